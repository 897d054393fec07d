package vip_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// arpSeen is one ARP frame captured on the client.
type arpSeen struct {
	At       time.Time
	EthDst   net.HardwareAddr
	Op       uint16
	SHA      net.HardwareAddr
	SPA, TPA netip.Addr
}

// parseARP decodes an Ethernet frame carrying ARP for IPv4, or reports
// false.
func parseARP(b []byte) (arpSeen, bool) {
	if len(b) < 14+28 || binary.BigEndian.Uint16(b[12:]) != 0x0806 {
		return arpSeen{}, false
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return arpSeen{}, false
	}
	spa, _ := netip.AddrFromSlice(a[14:18])
	tpa, _ := netip.AddrFromSlice(a[24:28])
	return arpSeen{EthDst: net.HardwareAddr(append([]byte(nil), b[0:6]...)), Op: binary.BigEndian.Uint16(a[6:]),
		SHA: net.HardwareAddr(append([]byte(nil), a[8:14]...)), SPA: spa, TPA: tpa}, true
}

// arpCapture records the ARP frames seen on a host's eth0 through an
// AF_PACKET socket opened in its namespace.
type arpCapture struct {
	fd   int
	stop atomic.Bool
	done chan struct{}
	mu   sync.Mutex
	seen []arpSeen
}

func (tp *topo) captureARP(h string) *arpCapture {
	tp.t.Helper()
	c := &arpCapture{done: make(chan struct{})}
	err := tp.In(h, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ARP)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifc.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		tp.t.Fatalf("capture on %s: %v", h, err)
	}
	go c.loop()
	tp.t.Cleanup(c.close)
	return c
}

func (c *arpCapture) loop() {
	defer close(c.done)
	buf := make([]byte, 2048)
	for !c.stop.Load() {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // timeout: look at stop again
		}
		if a, ok := parseARP(buf[:n]); ok {
			a.At = time.Now()
			c.mu.Lock()
			c.seen = append(c.seen, a)
			c.mu.Unlock()
		}
	}
}

func (c *arpCapture) close() {
	if c.stop.Swap(true) {
		return
	}
	<-c.done
	unix.Close(c.fd)
}

// frames returns the captured frames that match.
func (c *arpCapture) frames(match func(arpSeen) bool) []arpSeen {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []arpSeen
	for _, a := range c.seen {
		if match(a) {
			out = append(out, a)
		}
	}
	return out
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
