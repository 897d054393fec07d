package vip

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

var _ Prober = (*Netlink)(nil)

// InUse probes for the VIP's address and listens for an answer for wait,
// probing a second time halfway through in case a frame is lost: an RFC
// 5227 ARP probe for IPv4, an RFC 4862 duplicate address detection
// neighbour solicitation for IPv6 (see probeFrame). The socket listens only
// while it probes (bound to ARP or IPv6 on the VIP's interface, then back
// to no protocol), so little queues on it in between, and that is drained.
func (n *Netlink) InUse(ctx context.Context, v VIP, wait time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.link(v.Interface)
	if err != nil {
		return false, fmt.Errorf("vip: probe %s: %w", v, err)
	}
	attrs := l.Attrs()
	mac := attrs.HardwareAddr
	if len(mac) != 6 {
		return false, fmt.Errorf("vip: probe %s: interface has no Ethernet address", v)
	}
	pf := newProbeFrame(mac, v.Prefix.Addr())
	// Frames that queued after the last probe's answer, before it unbound,
	// are old news: an answer must come in this probe's window.
	buf := make([]byte, 1500) // a whole frame: a truncated NA fails its checksum
	for {
		if _, _, err := unix.Recvfrom(n.probeFD, buf, unix.MSG_DONTWAIT); err != nil {
			break
		}
	}
	// The filter goes on before the bind, so no frame escapes it.
	if err := attachFilter(n.probeFD, pf.filter); err != nil {
		return false, fmt.Errorf("vip: probe %s: filter: %w", v, err)
	}
	listen := &unix.SockaddrLinklayer{Protocol: htons(pf.etherType), Ifindex: attrs.Index}
	if err := unix.Bind(n.probeFD, listen); err != nil {
		return false, fmt.Errorf("vip: probe %s: bind: %w", v, err)
	}
	defer unix.Bind(n.probeFD, &unix.SockaddrLinklayer{Ifindex: attrs.Index})
	to := &unix.SockaddrLinklayer{Protocol: htons(pf.etherType), Ifindex: attrs.Index, Halen: 6}
	copy(to.Addr[:], pf.dst)
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	second := time.Now().Add(wait / 2)
	sent := 0
	for {
		now := time.Now()
		if sent == 0 || (sent == 1 && !now.Before(second)) {
			if err := unix.Sendto(n.probeFD, pf.payload, 0, to); err != nil {
				return false, fmt.Errorf("vip: probe %s: %w", v, err)
			}
			sent++
		}
		next := deadline
		if sent == 1 && second.Before(next) {
			next = second
		}
		left := next.Sub(now)
		if !now.Before(deadline) {
			return false, nil
		}
		if left <= 0 {
			continue
		}
		fds := []unix.PollFd{{Fd: int32(n.probeFD), Events: unix.POLLIN}}
		nr, err := unix.Poll(fds, int(max(left.Milliseconds(), 1)))
		if err != nil && err != unix.EINTR {
			return false, fmt.Errorf("vip: probe %s: poll: %w", v, err)
		}
		for nr > 0 {
			m, from, err := unix.Recvfrom(n.probeFD, buf, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			// Frames this host sends (announcements for other VIPs, the
			// probe itself) are never another host's answer.
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if pf.answers(buf[:m]) {
				return true, nil
			}
		}
	}
}

// attachFilter puts a classic BPF program on the socket, replacing any.
func attachFilter(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}
