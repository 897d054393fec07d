package cluster

import (
	"bufio"
	"math/rand/v2"
	"net"
	"time"
)

// start runs the peer's two outbound connection loops.
func (p *peer) start() {
	for _, kind := range []StreamKind{StreamCluster, streamHeartbeat} {
		p.loops.Add(1)
		p.t.goFunc(func() {
			defer p.loops.Done()
			p.keepConnected(kind)
		})
	}
}

// keepConnected dials the peer for one kind of connection and serves it,
// again and again with backoff, until the peer is stopped.
func (p *peer) keepConnected(kind StreamKind) {
	prof := p.t.cfg.Profile
	backoff := prof.ReconnectMin
	for {
		select {
		case <-p.quit:
			return
		default:
		}
		p.mu.Lock()
		addr := p.addr
		p.mu.Unlock()
		conn, raw, br, res, err := p.t.dialStream(p.ctx, addr, kind, p.id)
		if err != nil {
			p.dialFailed(err)
			// Full jitter keeps a restarted cluster from dialing in lockstep.
			wait := time.Duration(rand.Int64N(int64(backoff))) + prof.ReconnectMin/2
			backoff = min(2*backoff, prof.ReconnectMax)
			select {
			case <-p.quit:
				return
			case <-time.After(wait):
			}
			continue
		}
		backoff = prof.ReconnectMin
		p.connected(kind, raw, res)
		if kind == streamHeartbeat {
			p.serveHeartbeat(conn, br)
		} else {
			p.serveData(conn, br)
		}
		conn.Close()
		p.disconnected(kind)
	}
}

// serveData drains the send queue into conn in batches until the
// connection fails or the peer is stopped. The peer sends nothing back on
// this connection; a read returning is how a close or reset is noticed.
func (p *peer) serveData(conn net.Conn, br *bufio.Reader) {
	readErr := make(chan error, 1)
	p.t.goFunc(func() {
		_, err := br.ReadByte()
		readErr <- err
	})
	defer func() {
		conn.Close()
		<-readErr
	}()
	for {
		quitting := false
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.waiting = true
			p.mu.Unlock()
			select {
			case <-p.kick:
			case err := <-readErr:
				readErr <- err // for the deferred wait
				return
			case <-p.quit:
				quitting = true
			}
			p.mu.Lock()
		}
		select {
		case <-p.quit:
			quitting = true
		default:
		}
		p.waiting = false
		batch := p.pending
		p.pending, p.spare = p.spare[:0], nil
		p.queued = 0
		p.mu.Unlock()

		timeout := p.t.cfg.Profile.WriteTimeout
		if quitting && p.t.aborted.Load() {
			return // a crash says nothing
		}
		if quitting {
			// Flush what is queued and say goodbye, within a short bound.
			batch = appendGoodbye(batch)
			timeout = min(timeout, 250*time.Millisecond)
		}
		var err error
		if len(batch) > 0 {
			conn.SetWriteDeadline(time.Now().Add(timeout))
			_, err = conn.Write(batch)
			p.t.stats.bytesSent.Add(uint64(len(batch)))
		}
		p.mu.Lock()
		p.spare = batch[:0]
		p.mu.Unlock()
		if err != nil || quitting {
			return // a failed batch is lost: the receiver sees the gap
		}
	}
}

// serveHeartbeat sends a ping whenever the heartbeat loop asks and reads the
// pongs, until the connection fails or the peer is stopped.
func (p *peer) serveHeartbeat(conn net.Conn, br *bufio.Reader) {
	readErr := make(chan error, 1)
	p.t.goFunc(func() {
		readErr <- p.t.readFrames(conn, br, p.t.heartbeatIdle(), func(body []byte) error {
			f, err := decodeBody(body)
			if err != nil || f.typ != framePong {
				p.t.stats.malformed.Add(1)
				return nil
			}
			now := p.t.cfg.Now()
			p.pong(now, now.Sub(p.t.start)-time.Duration(f.stamp))
			return nil
		}, nil)
	})
	defer func() {
		conn.Close()
		<-readErr
	}()
	var buf [lenPrefix + pingBodyLen]byte
	wake(p.ping) // a first round trip at once brings the peer up
	for {
		select {
		case <-p.ping:
		case err := <-readErr:
			readErr <- err
			return
		case <-p.quit:
			return
		}
		stamp := uint64(p.t.cfg.Now().Sub(p.t.start))
		conn.SetWriteDeadline(time.Now().Add(p.t.cfg.Profile.WriteTimeout))
		if _, err := conn.Write(appendStamp(buf[:0], framePing, stamp)); err != nil {
			return
		}
	}
}

func (p *peer) connected(kind StreamKind, raw net.Conn, res handshakeResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if kind == streamHeartbeat {
		p.hbRaw = raw
	} else {
		p.dataRaw = raw
	}
	p.version = res.version
	p.lastErr = ""
	p.t.log.Debug("cluster: connected", "peer", string(p.id), "kind", string(kind), "version", res.version)
}

// disconnected records a broken outbound connection. A broken heartbeat
// connection makes a peer that was up suspect at once (the dead timeout then
// decides); a broken data connection says nothing about liveness.
func (p *peer) disconnected(kind StreamKind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if kind == streamHeartbeat {
		p.hbRaw = nil
		if p.state == StateUp && !p.stopping {
			p.setStateLocked(StateSuspect)
		}
	} else {
		p.dataRaw = nil
	}
}

// closeConns closes every connection of the peer, below TLS (which never
// blocks), so both sides start afresh. The caller holds p.mu.
func (p *peer) closeConns() {
	for _, c := range []net.Conn{p.dataRaw, p.hbRaw} {
		if c != nil {
			c.Close()
		}
	}
	for _, a := range []*atomicConn{&p.inRaw, &p.inHB} {
		if c := a.Load(); c != nil {
			(*c).Close()
		}
	}
}
