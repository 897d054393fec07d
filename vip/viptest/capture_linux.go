package viptest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ARPFrame is one ARP frame captured on a host.
type ARPFrame struct {
	At       time.Time // when the capture read it
	EthDst   net.HardwareAddr
	Op       uint16 // 1 request, 2 reply
	SHA      net.HardwareAddr
	SPA, TPA netip.Addr
}

// parseARP decodes an Ethernet frame carrying ARP for IPv4, or reports
// false.
func parseARP(b []byte) (ARPFrame, bool) {
	if len(b) < 14+28 || binary.BigEndian.Uint16(b[12:]) != 0x0806 {
		return ARPFrame{}, false
	}
	a := b[14:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return ARPFrame{}, false
	}
	spa, _ := netip.AddrFromSlice(a[14:18])
	tpa, _ := netip.AddrFromSlice(a[24:28])
	return ARPFrame{EthDst: net.HardwareAddr(append([]byte(nil), b[0:6]...)), Op: binary.BigEndian.Uint16(a[6:]),
		SHA: net.HardwareAddr(append([]byte(nil), a[8:14]...)), SPA: spa, TPA: tpa}, true
}

// ARPCapture records the ARP frames seen on a host's eth0 through an
// AF_PACKET socket opened in its namespace. Its methods are safe for
// concurrent use; it stops when the test ends.
type ARPCapture struct {
	fd   int
	stop atomic.Bool
	done chan struct{}
	mu   sync.Mutex
	seen []ARPFrame
}

// CaptureARP starts recording the ARP frames on host h's eth0.
func (tp *Topo) CaptureARP(h string) *ARPCapture {
	tp.T.Helper()
	c := &ARPCapture{done: make(chan struct{})}
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
		// A read timeout lets the loop see stop without closing the fd
		// under a blocked read.
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		tp.T.Fatalf("capture on %s: %v", h, err)
	}
	go c.loop()
	tp.T.Cleanup(c.close)
	return c
}

func (c *ARPCapture) loop() {
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

func (c *ARPCapture) close() {
	if c.stop.Swap(true) {
		return
	}
	<-c.done
	unix.Close(c.fd)
}

// Frames returns the captured frames that match.
func (c *ARPCapture) Frames(match func(ARPFrame) bool) []ARPFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ARPFrame
	for _, a := range c.seen {
		if match(a) {
			out = append(out, a)
		}
	}
	return out
}

// htons puts a protocol number in network byte order, as AF_PACKET wants.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
