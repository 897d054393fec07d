package clustertest

import (
	"net"
	"strconv"
	"time"
)

// netName is what Addr.Network reports.
const netName = "mem"

// Addr is the address of a listener or connection end on a Network.
type Addr struct {
	Host string
	Port int
}

// Network returns "mem".
func (Addr) Network() string { return netName }

// String returns "host:port".
func (a Addr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// strAddr is an address given as a string, for error messages.
type strAddr string

func (strAddr) Network() string  { return netName }
func (a strAddr) String() string { return string(a) }

// listener is a Host's net.Listener. Dials complete without waiting for
// Accept: established connections queue here, like a kernel's backlog.
type listener struct {
	h    *Host
	addr Addr

	// Guarded by h.n.mu.
	queue  []*conn
	closed bool
	notify chan struct{}
}

// Accept waits for the next connection.
func (l *listener) Accept() (net.Conn, error) {
	n := l.h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		if l.closed {
			return nil, &net.OpError{Op: "accept", Net: netName, Addr: l.addr, Err: net.ErrClosed}
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			return c, nil
		}
		if l.notify == nil {
			l.notify = make(chan struct{})
		}
		ch := l.notify
		n.mu.Unlock()
		<-ch
		n.mu.Lock()
	}
}

// Close stops listening. Connections not yet accepted are reset, as a
// kernel does with its backlog.
func (l *listener) Close() error {
	n := l.h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if l.closed {
		return &net.OpError{Op: "close", Net: netName, Addr: l.addr, Err: net.ErrClosed}
	}
	l.closeLocked(time.Now())
	return nil
}

// Addr returns the listening address.
func (l *listener) Addr() net.Addr { return l.addr }

func (l *listener) closeLocked(now time.Time) {
	if l.closed {
		return
	}
	l.closed = true
	if l.h.listeners[l.addr.Port] == l {
		delete(l.h.listeners, l.addr.Port)
		delete(l.h.ports, l.addr.Port)
	}
	for _, c := range l.queue {
		c.abortLocked(now)
	}
	l.queue = nil
	l.wake()
}

func (l *listener) wake() {
	if l.notify != nil {
		close(l.notify)
		l.notify = nil
	}
}
