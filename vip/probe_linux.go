package vip

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

var _ Prober = (*Netlink)(nil)

// InUse sends an ARP probe for an IPv4 VIP and listens for an answer for
// wait, probing a second time halfway through in case a frame is lost. The
// socket listens only while it probes (bound to ARP on the VIP's interface,
// then back to no protocol), so nothing queues on it in between.
func (n *Netlink) InUse(ctx context.Context, v VIP, wait time.Duration) (bool, error) {
	if !v.Prefix.Addr().Is4() {
		return false, nil
	}
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
	listen := &unix.SockaddrLinklayer{Protocol: htons(etherTypeARP), Ifindex: attrs.Index}
	if err := unix.Bind(n.probeFD, listen); err != nil {
		return false, fmt.Errorf("vip: probe %s: bind: %w", v, err)
	}
	defer unix.Bind(n.probeFD, &unix.SockaddrLinklayer{Ifindex: attrs.Index})
	to := &unix.SockaddrLinklayer{Protocol: htons(etherTypeARP), Ifindex: attrs.Index, Halen: 6}
	copy(to.Addr[:], broadcastMAC)
	probe := arpProbe(mac, v.Prefix.Addr())
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	second := time.Now().Add(wait / 2)
	sent := 0
	buf := make([]byte, 256)
	for {
		now := time.Now()
		if sent == 0 || (sent == 1 && !now.Before(second)) {
			if err := unix.Sendto(n.probeFD, probe, 0, to); err != nil {
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
			m, _, err := unix.Recvfrom(n.probeFD, buf, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			if probeAnswer(buf[:m], mac, v.Prefix.Addr()) {
				return true, nil
			}
		}
	}
}
