package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ports handed out for port 0 and to dialers, like a kernel's ephemeral
// range.
const (
	firstEphemeral = 49152
	lastEphemeral  = 65535
)

// Host is one named host of a Network. It implements cluster.Network: give
// it to a transport as the network to listen and dial on.
type Host struct {
	n    *Network
	name string

	// Guarded by n.mu.
	killed    bool
	listeners map[int]*listener
	ports     map[int]bool // in use by listeners and dialed conns
	nextPort  int
	clk       hostClock
}

type hostClock struct {
	set        bool
	realAnchor time.Time
	hostAnchor time.Time
	rate       float64
}

func newHost(n *Network, name string) *Host {
	return &Host{
		n:         n,
		name:      name,
		listeners: make(map[int]*listener),
		ports:     make(map[int]bool),
		nextPort:  firstEphemeral,
	}
}

// Name returns the host's name, which is also its address.
func (h *Host) Name() string { return h.name }

// Now returns the host's clock: the true time (the fake time inside a
// testing/synctest bubble) shifted and scaled by SetClock. Hand it to the
// code under test as its injected clock.
func (h *Host) Now() time.Time {
	h.n.mu.Lock()
	c := h.clk
	h.n.mu.Unlock()
	now := time.Now()
	if !c.set {
		return now
	}
	return c.hostAnchor.Add(time.Duration(float64(now.Sub(c.realAnchor)) * c.rate))
}

// SetClock makes the host's clock read offset ahead of the true time from
// now on (negative: behind) and advance rate seconds per true second (1 is
// the true rate, 1.001 gains 1 ms per second; a negative rate counts as 0).
// Connection deadlines are not affected: like the kernel's, they follow the
// true time.
func (h *Host) SetClock(offset time.Duration, rate float64) {
	now := time.Now()
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	if !(rate >= 0) { // negative or NaN
		rate = 0
	}
	h.clk = hostClock{set: true, realAnchor: now, hostAnchor: now.Add(offset), rate: rate}
}

// Listen listens on "name:port" ("" may stand for the host's name); port 0
// picks a free port. It fails on a port in use (EADDRINUSE), on a killed
// host and on a closed network.
func (h *Host) Listen(ctx context.Context, addr string) (net.Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: netName, Addr: strAddr(addr), Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, opErr(err)
	}
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, opErr(err)
	}
	if host != "" && host != h.name {
		return nil, opErr(fmt.Errorf("%w: %q is not an address of host %q", ErrBadAddress, addr, h.name))
	}
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := h.usableLocked(); err != nil {
		return nil, opErr(err)
	}
	if port == 0 {
		if port = h.allocPortLocked(); port == 0 {
			return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
		}
	} else if h.ports[port] {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	h.ports[port] = true
	l := &listener{h: h, addr: Addr{Host: h.name, Port: port}}
	h.listeners[port] = l
	return l, nil
}

// Dial connects to "host:port". It completes after one round trip of link
// delay. While the path there or back is blocked (partition, cut, blackhole)
// the dial hangs until the link heals or ctx ends, then fails with a timeout
// error. A killed host, or a port where nothing listens, refuses at once
// (ECONNREFUSED).
func (h *Host) Dial(ctx context.Context, addr string) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: netName, Addr: strAddr(addr), Err: err}
	}
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, opErr(err)
	}
	if host == "" {
		host = h.name
	}
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	waitedRTT := false
	for {
		if err := h.usableLocked(); err != nil {
			return nil, opErr(err)
		}
		if err := ctx.Err(); err != nil {
			return nil, opErr(ctxError(err))
		}
		// The SYN and the SYN-ACK must both get through.
		if !n.linkOpen(h.name, host) || !n.linkOpen(host, h.name) {
			ch := n.changed
			n.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			n.mu.Lock()
			continue
		}
		if !waitedRTT {
			waitedRTT = true
			if rtt := n.delayOf(h.name, host) + n.delayOf(host, h.name); rtt > 0 {
				n.mu.Unlock()
				t := time.NewTimer(rtt)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
				t.Stop()
				n.mu.Lock()
				continue // the network may have changed meanwhile
			}
		}
		break
	}
	dst := n.hosts[host]
	var l *listener
	if dst != nil && !dst.killed {
		l = dst.listeners[port]
	}
	if l == nil {
		return nil, opErr(os.NewSyscallError("connect", syscall.ECONNREFUSED))
	}
	lport := h.allocPortLocked()
	if lport == 0 {
		return nil, opErr(os.NewSyscallError("connect", syscall.EADDRNOTAVAIL))
	}
	h.ports[lport] = true
	client, server := n.newConnPair(h, Addr{h.name, lport}, dst, l.addr)
	l.queue = append(l.queue, server)
	l.wake()
	return client, nil
}

// usableLocked reports why the host cannot listen or dial, if it cannot.
func (h *Host) usableLocked() error {
	if h.n.closed {
		return ErrNetworkClosed
	}
	if h.killed {
		return ErrHostDown
	}
	return nil
}

// allocPortLocked returns a free port of the ephemeral range, or 0.
func (h *Host) allocPortLocked() int {
	for range lastEphemeral - firstEphemeral + 1 {
		p := h.nextPort
		h.nextPort++
		if h.nextPort > lastEphemeral {
			h.nextPort = firstEphemeral
		}
		if !h.ports[p] {
			return p
		}
	}
	return 0
}

// Kill is the abrupt death of a host's process: its listeners close, its
// connections fail every call with net.ErrClosed, and each peer gets a reset
// (ECONNRESET) once the reset can cross the link. Dials to the host are
// refused and its own dials and listens fail until Restart.
func (n *Network) Kill(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.hostLocked(host)
	if h.killed || n.closed {
		h.killed = true
		return
	}
	h.killed = true
	now := time.Now()
	for _, l := range h.listeners {
		l.closeLocked(now)
	}
	for c := range n.conns {
		if c.host == h {
			c.abortLocked(now)
		}
	}
	n.wakeAllLocked() // the host's own dials fail now
}

// Restart brings a killed host back, empty: its programs may listen and
// dial again. Restarting a live host does nothing.
func (n *Network) Restart(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hostLocked(host).killed = false
}

// splitAddr parses "host:port"; the host part may be empty.
func splitAddr(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	if strings.Contains(host, ":") {
		return "", 0, fmt.Errorf("%w: host name %q contains ':'", ErrBadAddress, host)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%w: bad port in %q", ErrBadAddress, addr)
	}
	return host, port, nil
}

// ctxError maps a context error to what a dial reports: a deadline becomes
// a net timeout error.
func ctxError(err error) error {
	if err == context.DeadlineExceeded {
		return timeoutError{}
	}
	return err
}

// timeoutError is a dial that ran out of time. It matches both
// os.ErrDeadlineExceeded and context.DeadlineExceeded with errors.Is.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded
}
