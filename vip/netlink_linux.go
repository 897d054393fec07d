package vip

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the Linux Backend: it manages addresses over rtnetlink
// (github.com/vishvananda/netlink) and sends gratuitous ARPs and unsolicited
// neighbour advertisements over an AF_PACKET socket. It needs
// CAP_NET_ADMIN and CAP_NET_RAW.
//
// A Netlink works in the network namespace of the thread that created it:
// its sockets are opened in NewNetlink.
type Netlink struct {
	mu      sync.Mutex // netlink requests and the packet socket, one at a time
	h       *netlink.Handle
	fd      int
	probeFD int // ARP and DAD probes (probe_linux.go): listens only while probing
	closed  bool
}

var _ Backend = (*Netlink)(nil)

// NewNetlink opens the netlink and packet sockets (one to send
// announcements, one for probes).
func NewNetlink() (*Netlink, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: netlink: %w", err)
	}
	// Protocol 0: this socket only sends, so the kernel queues nothing to it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: packet socket: %w", err)
	}
	// Protocol 0 too: InUse binds it to ARP or IPv6 only while it probes.
	probeFD, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		unix.Close(fd)
		h.Close()
		return nil, fmt.Errorf("vip: packet socket: %w", err)
	}
	return &Netlink{h: h, fd: fd, probeFD: probeFD}, nil
}

// Close closes the sockets. It does not touch the addresses. It is
// idempotent.
func (n *Netlink) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.h.Close()
	unix.Close(n.probeFD)
	return unix.Close(n.fd)
}

func (n *Netlink) link(name string) (netlink.Link, error) {
	if n.closed {
		return nil, ErrClosed
	}
	return n.h.LinkByName(name)
}

func (v VIP) netlinkAddr() *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: v.Prefix.Addr().AsSlice(),
		Mask: net.CIDRMask(v.Prefix.Bits(), v.Prefix.Addr().BitLen())}}
	if v.Prefix.Addr().Is6() {
		// No kernel duplicate address detection: InUse has already done
		// its job, in ProbeWait and with waiting while the address is in
		// use. The kernel's would keep the address tentative (unusable)
		// for 1–2 s on every takeover, and when a killed holder's stale
		// copy answered it the address would stay "dadfailed" for good,
		// not come up once that copy expires.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// Add adds the address or replaces it with a fresh lifetime (rounded up to
// whole seconds, as the kernel counts them).
func (n *Netlink) Add(ctx context.Context, v VIP, lifetime time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.link(v.Interface)
	if err != nil {
		return fmt.Errorf("vip: add %s: %w", v, err)
	}
	a := v.netlinkAddr()
	secs := int(ceilSecond(lifetime) / time.Second)
	a.ValidLft, a.PreferedLft = secs, secs
	if err := n.h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("vip: add %s: %w", v, err)
	}
	return nil
}

// Remove deletes the address; an absent address or interface is not an
// error.
func (n *Netlink) Remove(ctx context.Context, v VIP) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.link(v.Interface)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vip: remove %s: %w", v, err)
	}
	if err := n.h.AddrDel(l, v.netlinkAddr()); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("vip: remove %s: %w", v, err)
	}
	return nil
}

// Announce sends one gratuitous ARP or unsolicited NA from the interface's
// hardware address.
func (n *Netlink) Announce(ctx context.Context, v VIP) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.link(v.Interface)
	if err != nil {
		return fmt.Errorf("vip: announce %s: %w", v, err)
	}
	attrs := l.Attrs()
	mac := attrs.HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("vip: announce %s: interface has no Ethernet address", v)
	}
	to := &unix.SockaddrLinklayer{Ifindex: attrs.Index, Halen: 6}
	var payload []byte
	if v.Prefix.Addr().Is4() {
		to.Protocol = htons(etherTypeARP)
		copy(to.Addr[:], broadcastMAC)
		payload = arpAnnouncement(mac, v.Prefix.Addr())
	} else {
		to.Protocol = htons(etherTypeIPv6)
		copy(to.Addr[:], allNodesMAC)
		payload = unsolicitedNA(mac, v.Prefix.Addr())
	}
	if err := unix.Sendto(n.fd, payload, 0, to); err != nil {
		return fmt.Errorf("vip: announce %s: %w", v, err)
	}
	return nil
}

// htons puts v in network byte order, as sockaddr_ll's protocol wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
