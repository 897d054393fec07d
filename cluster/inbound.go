package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// acceptLoop accepts connections until the listener closes.
func (t *TCP) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("cluster: accept failed", "err", err)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.goFunc(func() { t.serveConn(c) })
	}
}

// forget drops an accepted connection from the set Close closes.
func (t *TCP) forget(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// serveConn runs TLS, the multiplexer byte and the handshake of an accepted
// connection, then hands it to its stream.
func (t *TCP) serveConn(raw net.Conn) {
	conn := raw
	handedOff := false
	defer func() {
		if !handedOff {
			conn.Close()
			t.forget(raw)
		}
	}()
	conn.SetDeadline(time.Now().Add(t.cfg.Profile.DialTimeout))
	if t.srvTLS != nil {
		tc := tls.Server(raw, t.srvTLS)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			t.stats.handshakeFailures.Add(1)
			t.stats.authFailures.Add(1)
			t.log.Warn("cluster: TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
			return
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, readBufSize)
	kb, err := br.ReadByte()
	if err != nil {
		return
	}
	kind := StreamKind(kb)
	var sl *streamListener
	if kind != StreamCluster && kind != streamHeartbeat {
		t.mu.RLock()
		sl = t.streams[kind]
		t.mu.RUnlock()
		if sl == nil {
			t.stats.handshakeFailures.Add(1)
			t.log.Warn("cluster: connection for an unknown stream", "remote", raw.RemoteAddr().String(), "kind", kb)
			return
		}
	}
	res, err := t.hs.accept(conn, br, kind)
	if err != nil {
		t.handshakeFailed(raw.RemoteAddr().String(), err)
		return
	}
	conn.SetDeadline(time.Time{})
	if sl != nil {
		t.forget(raw) // the stream's user owns it now
		handedOff = true
		sl.deliver(&bufConn{Conn: conn, r: br})
		return
	}
	t.serveInbound(conn, raw, br, res, kind)
}

func (t *TCP) handshakeFailed(remote string, err error) {
	t.stats.handshakeFailures.Add(1)
	if errors.Is(err, ErrAuthFailed) {
		t.stats.authFailures.Add(1)
	}
	// A misconfigured peer retries every backoff: warn once a minute per
	// reason, and count every refusal.
	reason := err.Error()
	now := time.Now()
	t.refusedMu.Lock()
	if t.refused == nil {
		t.refused = make(map[string]time.Time)
	}
	last, seen := t.refused[reason]
	if !seen || now.Sub(last) > time.Minute {
		t.refused[reason] = now
		if len(t.refused) > 64 { // bounded: forget old reasons
			for k, at := range t.refused {
				if now.Sub(at) > time.Minute {
					delete(t.refused, k)
				}
			}
		}
	}
	t.refusedMu.Unlock()
	if !seen || now.Sub(last) > time.Minute {
		t.log.Warn("cluster: handshake refused", "remote", remote, "err", err)
	} else {
		t.log.Debug("cluster: handshake refused", "remote", remote, "err", err)
	}
}

// serveInbound serves a connection a peer dialed to us: its data, or its
// heartbeats.
func (t *TCP) serveInbound(conn, raw net.Conn, br *bufio.Reader, res handshakeResult, kind StreamKind) {
	t.mu.Lock()
	if t.removed[res.id] {
		t.mu.Unlock()
		t.log.Debug("cluster: refused a connection from a removed peer", "peer", string(res.id))
		return
	}
	p, ok := t.peers[res.id]
	if !ok && !t.closed {
		if res.addr == "" {
			t.mu.Unlock()
			t.log.Warn("cluster: unknown peer advertises no address", "peer", string(res.id))
			return
		}
		t.log.Info("cluster: peer joined", "peer", string(res.id), "addr", res.addr)
		p = t.addPeerLocked(res.id, res.addr)
	}
	t.mu.Unlock()
	if p == nil {
		return
	}
	if res.addr != "" {
		p.setAddr(res.addr)
	}
	if kind == streamHeartbeat {
		if old := p.inHB.Swap(&raw); old != nil {
			(*old).Close()
		}
		t.answerPings(conn, br)
		p.inHB.CompareAndSwap(&raw, nil)
		return
	}
	gen := p.attachInbound(raw, res.incarnation)
	err := t.readInbound(p, conn, br, gen)
	p.detachInbound(gen)
	if err != nil && !t.isClosed() && !errors.Is(err, errSuperseded) {
		t.log.Debug("cluster: inbound connection ended", "peer", string(p.id), "err", err)
	}
}

// errSuperseded ends a reader whose peer has connected again.
var errSuperseded = errors.New("cluster: connection superseded")

const readBufSize = 64 << 10

// readFrames reads length-prefixed frames from br and calls fn with each
// body. A frame over the cap closes the connection; fn's error ends the
// loop; so does silence longer than idle, unless idle is 0. beforeWait, when
// set, runs before every read that may block (so a caller can release what
// it holds while frames come back to back).
func (t *TCP) readFrames(conn net.Conn, br *bufio.Reader, idle time.Duration, fn func(body []byte) error, beforeWait func()) error {
	maxLen := t.cfg.MaxMessageSize + frameOverhead
	var big []byte
	var lastDeadline time.Time
	var bytes uint64 // counted locally, published before any read that may block
	defer func() { t.stats.bytesReceived.Add(bytes) }()
	for {
		if idle > 0 {
			if now := time.Now(); now.Sub(lastDeadline) > idle/4 {
				conn.SetReadDeadline(now.Add(idle))
				lastDeadline = now
			}
		}
		if br.Buffered() < lenPrefix {
			if beforeWait != nil {
				beforeWait()
			}
			if bytes > 0 {
				t.stats.bytesReceived.Add(bytes)
				bytes = 0
			}
		}
		hdr, err := br.Peek(lenPrefix)
		if err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr))
		if n > maxLen {
			t.stats.oversize.Add(1)
			return fmt.Errorf("%w: frame of %d bytes exceeds the cap of %d", ErrTooLarge, n, maxLen)
		}
		if br.Buffered() < lenPrefix+n && beforeWait != nil {
			beforeWait()
		}
		var body []byte
		if lenPrefix+n <= br.Size() {
			buf, err := br.Peek(lenPrefix + n)
			if err != nil {
				return err
			}
			body = buf[lenPrefix:]
		} else {
			br.Discard(lenPrefix)
			if cap(big) < n {
				big = make([]byte, n)
			}
			body = big[:n]
			if _, err := io.ReadFull(br, body); err != nil {
				return err
			}
		}
		bytes += uint64(lenPrefix + n)
		if err := fn(body); err != nil {
			return err
		}
		if lenPrefix+n <= br.Size() {
			br.Discard(lenPrefix + n)
		}
	}
}

// heartbeatIdle is how long a heartbeat connection may stay silent: pings
// come every HeartbeatInterval, so this much silence means it is stalled.
func (t *TCP) heartbeatIdle() time.Duration { return 4 * t.cfg.Profile.DeadTimeout }

// answerPings echoes every ping on a peer's heartbeat connection.
func (t *TCP) answerPings(conn net.Conn, br *bufio.Reader) error {
	var pong [lenPrefix + pingBodyLen]byte
	return t.readFrames(conn, br, t.heartbeatIdle(), func(body []byte) error {
		f, err := decodeBody(body)
		if err != nil || f.typ != framePing {
			t.stats.malformed.Add(1)
			return nil
		}
		conn.SetWriteDeadline(time.Now().Add(t.cfg.Profile.WriteTimeout))
		_, err = conn.Write(appendStamp(pong[:0], framePong, f.stamp))
		return err
	}, nil)
}

// readInbound delivers a peer's data frames. The data connection carries no
// heartbeats, so it has no idle limit: liveness closes it when the peer dies.
//
// The peer's receive lock is taken once for a run of frames that are
// already buffered and released before any read that may block.
func (t *TCP) readInbound(p *peer, conn net.Conn, br *bufio.Reader, gen uint64) error {
	locked := false
	release := func() {
		if locked {
			p.rmu.Unlock()
			locked = false
		}
	}
	defer release()
	return t.readFrames(conn, br, 0, func(body []byte) error {
		f, err := decodeBody(body)
		if err != nil {
			t.stats.malformed.Add(1)
			return nil // the length kept the stream in sync: skip the frame
		}
		switch f.typ {
		case frameData:
			if !locked {
				p.rmu.Lock()
				locked = true
				if gen != p.inGen {
					return errSuperseded // a newer connection of the peer took over
				}
			}
			p.deliverLocked(f)
		case frameGoodbye:
			release()
			p.goodbye()
		default:
			t.stats.malformed.Add(1)
		}
		return nil
	}, release)
}

// dialStream connects to addr, runs TLS and the handshake for kind. want,
// when set, is the node expected at addr.
// It returns the connection to use and the one below TLS.
func (t *TCP) dialStream(ctx context.Context, addr string, kind StreamKind, want NodeID) (conn, raw net.Conn, br *bufio.Reader, res handshakeResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Profile.DialTimeout)
	defer cancel()
	raw, err = t.cfg.Network.Dial(ctx, addr)
	if err != nil {
		return nil, nil, nil, res, err
	}
	conn = raw
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if t.cliTLS != nil {
		tc := tls.Client(raw, t.cliTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, nil, nil, res, fmt.Errorf("%w: TLS: %v", ErrAuthFailed, err)
		}
		conn = tc
	}
	br = bufio.NewReaderSize(conn, readBufSize)
	res, err = t.hs.dial(conn, br, kind, want)
	if err != nil {
		raw.Close()
		return nil, nil, nil, res, err
	}
	conn.SetDeadline(time.Time{})
	return conn, raw, br, res, nil
}
