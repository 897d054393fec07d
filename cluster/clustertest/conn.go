package clustertest

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// conn is one end of a connection. It has no goroutine: calls wait on the
// conn's notify channel, closed at every change that may unblock them, and
// on a timer for the next delivery or deadline.
type conn struct {
	n             *Network
	host          *Host
	local, remote Addr
	peer          *conn
	in            *pipe // bytes from peer to this end

	// Guarded by n.mu.
	closed  bool // closed by Close or Network.Close
	killed  bool // its host was killed, or its listener closed before Accept
	rst     reset
	rdl     time.Time
	wdl     time.Time
	writing bool // a Write is in progress; Writes do not interleave
	wclosed bool // CloseWrite was called
	// ownsPort: this end dialed and holds its ephemeral local port.
	ownsPort bool
	notify   chan struct{}
}

// reset is a connection reset travelling from the peer's host to this end.
type reset struct {
	pending, settled bool
	at               time.Time
	from             string
}

func (n *Network) newConnPair(ch *Host, caddr Addr, sh *Host, saddr Addr) (client, server *conn) {
	client = &conn{n: n, host: ch, local: caddr, remote: saddr, in: newPipe(saddr, caddr, n.seed)}
	server = &conn{n: n, host: sh, local: saddr, remote: caddr, in: newPipe(caddr, saddr, n.seed)}
	client.peer, server.peer = server, client
	client.ownsPort = true
	n.conns[client] = struct{}{}
	n.conns[server] = struct{}{}
	return client, server
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: netName, Source: c.local, Addr: c.remote, Err: err}
}

// errLocked returns the error every call on the conn gets now, if any.
func (c *conn) errLocked(op string, now time.Time) error {
	if c.closed || c.killed || c.n.closed {
		return c.opError(op, net.ErrClosed)
	}
	if c.resetLocked(now) {
		return c.opError(op, os.NewSyscallError(op, syscall.ECONNRESET))
	}
	return nil
}

// resetLocked reports whether a reset has reached this end.
func (c *conn) resetLocked(now time.Time) bool {
	r := &c.rst
	if r.pending && !r.settled && !r.at.After(now) && c.n.linkOpen(r.from, c.host.name) {
		r.settled = true
	}
	return r.settled
}

// sendResetLocked makes the peer's host answer this end with a reset.
func (c *conn) sendResetLocked(from string, at time.Time) {
	if c.rst.pending {
		return
	}
	c.rst = reset{pending: true, at: at, from: from}
	c.wake()
}

// Read reads delivered bytes, waiting until there are some, the stream
// ends (io.EOF), an error, or the read deadline.
func (c *conn) Read(b []byte) (int, error) {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		now := time.Now()
		if err := c.errLocked("read", now); err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, nil
		}
		// As in package net, a passed deadline fails the call even when
		// data is waiting.
		if !c.rdl.IsZero() && !now.Before(c.rdl) {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		p := c.in
		open := n.linkOpen(p.from, p.to)
		if k := p.readable(now, open); k > 0 {
			m := p.read(b, k)
			n.delivered[Link{p.from, p.to}] += int64(m)
			c.peer.wake() // the writer may have room now
			return m, nil
		}
		if p.finReadable(now, open) {
			return 0, io.EOF
		}
		c.waitLocked(earliest(c.rdl, p.next(open), c.rstNext()))
	}
}

// Write writes all of b unless an error or the write deadline stops it
// first, waiting while the in-flight buffer is full.
func (c *conn) Write(b []byte) (int, error) {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for c.writing {
		now := time.Now()
		if err := c.errLocked("write", now); err != nil {
			return 0, err
		}
		if !c.wdl.IsZero() && !now.Before(c.wdl) {
			return 0, c.opError("write", os.ErrDeadlineExceeded)
		}
		c.waitLocked(earliest(c.wdl, c.rstNext()))
	}
	c.writing = true
	defer func() { c.writing = false; c.wake() }()
	written := 0
	for {
		now := time.Now()
		if err := c.errLocked("write", now); err != nil {
			return written, err
		}
		if c.wclosed {
			return written, c.opError("write", os.NewSyscallError("write", syscall.EPIPE))
		}
		if written == len(b) {
			return written, nil
		}
		if !c.wdl.IsZero() && !now.Before(c.wdl) {
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
		out := c.peer.in
		if out.gone {
			// Nobody reads at the other end: the bytes vanish and the
			// peer's host answers them with a reset.
			rtt := n.delayOf(c.host.name, c.peer.host.name) + n.delayOf(c.peer.host.name, c.host.name)
			c.sendResetLocked(c.peer.host.name, now.Add(rtt))
			return len(b), nil
		}
		if room := n.bufSize - out.size; room > 0 {
			m := min(room, len(b)-written)
			out.push(b[written:written+m], now, n.delayOf(out.from, out.to), n.dropRate, n.rto)
			written += m
			c.peer.wake()
			continue
		}
		c.waitLocked(earliest(c.wdl, c.rstNext()))
	}
}

// Close closes the conn. The peer reads what was delivered, then io.EOF:
// the FIN crosses the link after the data. If the link is blocked and bytes
// are held on it, they are discarded and the peer gets a reset when the link
// heals instead, so it never mistakes a cut-short stream for a whole one.
func (c *conn) Close() error {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed || c.killed || n.closed {
		return c.opError("close", net.ErrClosed)
	}
	now := time.Now()
	c.closed = true
	peer := c.peer
	out := peer.in
	if !out.gone && !c.wclosed {
		d := n.delayOf(c.host.name, peer.host.name)
		if !n.linkOpen(c.host.name, peer.host.name) && out.dropUnsettled() {
			peer.sendResetLocked(c.host.name, now.Add(d))
		} else {
			out.closeWrite(now, d)
		}
	}
	c.dropLocked(now)
	peer.wake()
	return nil
}

// CloseWrite shuts down the sending side, like (*net.TCPConn).CloseWrite:
// the peer reads the data, then io.EOF; this end can still read, and its
// writes fail with EPIPE.
func (c *conn) CloseWrite() error {
	n := c.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.closed || c.killed || n.closed {
		return c.opError("close", net.ErrClosed)
	}
	if c.wclosed {
		return nil
	}
	c.wclosed = true
	if out := c.peer.in; !out.gone {
		out.closeWrite(time.Now(), n.delayOf(c.host.name, c.peer.host.name))
	}
	c.peer.wake()
	c.wake()
	return nil
}

// abortLocked kills the conn without a goodbye: its own calls fail with
// net.ErrClosed and the peer gets a reset once it can cross the link.
func (c *conn) abortLocked(now time.Time) {
	if c.closed || c.killed {
		return
	}
	c.killed = true
	peer := c.peer
	if !peer.closed && !peer.killed {
		peer.sendResetLocked(c.host.name, now.Add(c.n.delayOf(c.host.name, peer.host.name)))
	}
	c.dropLocked(now)
	peer.wake()
}

// dropLocked releases a conn that was closed or killed.
func (c *conn) dropLocked(now time.Time) {
	p := c.in
	// Bytes that reached the host were delivered, read or not.
	if b := p.readableBytes(p.readable(now, c.n.linkOpen(p.from, p.to))); b > 0 {
		c.n.delivered[Link{p.from, p.to}] += int64(b)
	}
	p.discard()
	delete(c.n.conns, c)
	if c.ownsPort {
		delete(c.host.ports, c.local.Port)
	}
	c.wake()
}

func (c *conn) SetDeadline(t time.Time) error {
	return c.setDeadline("set", func() { c.rdl, c.wdl = t, t })
}

func (c *conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline("set", func() { c.rdl = t })
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline("set", func() { c.wdl = t })
}

func (c *conn) setDeadline(op string, set func()) error {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if c.closed || c.killed || c.n.closed {
		return c.opError(op, net.ErrClosed)
	}
	set()
	c.wake() // blocked calls re-check against the new deadline
	return nil
}

// settle records what reached this end before a fault change.
func (c *conn) settle(now time.Time) {
	c.in.settle(now, c.n.linkOpen(c.in.from, c.in.to))
	c.resetLocked(now)
}

// rstNext is when a pending reset may arrive by time alone.
func (c *conn) rstNext() time.Time {
	if c.rst.pending && !c.rst.settled && c.n.linkOpen(c.rst.from, c.host.name) {
		return c.rst.at
	}
	return time.Time{}
}

// waitLocked releases the lock until the conn is woken or until (if not
// zero) passes.
func (c *conn) waitLocked(until time.Time) {
	if c.notify == nil {
		c.notify = make(chan struct{})
	}
	ch := c.notify
	c.n.mu.Unlock()
	defer c.n.mu.Lock()
	if until.IsZero() {
		<-ch
		return
	}
	d := time.Until(until)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// wake unblocks every call waiting on the conn.
func (c *conn) wake() {
	if c.notify != nil {
		close(c.notify)
		c.notify = nil
	}
}

// earliest returns the earliest non-zero time, or zero.
func earliest(ts ...time.Time) time.Time {
	var e time.Time
	for _, t := range ts {
		if !t.IsZero() && (e.IsZero() || t.Before(e)) {
			e = t
		}
	}
	return e
}
