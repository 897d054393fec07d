package cluster

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// peer is one remote node: its send queue and outbound connection, its
// liveness, and the receive state of the connection it dialed to us.
type peer struct {
	t  *TCP
	id NodeID

	mu       sync.Mutex
	addr     string
	pending  []byte // encoded frames waiting for the writer
	spare    []byte // the writer's buffer between batches
	seq      [256]uint64
	pingDue  bool
	stopping bool
	conn     net.Conn // current outbound connection, nil when none
	raw      net.Conn // its transport-level connection (below TLS)
	// liveness, judged by the round trips this node starts
	state    State
	since    time.Time
	lastPong time.Time
	added    time.Time
	rise     int
	rtt      time.Duration
	version  uint8

	ctx    context.Context // cancelled by stop: aborts a dial in progress
	cancel context.CancelFunc
	kick   chan struct{} // wakes the writer; capacity 1
	quit   chan struct{} // closed by stop
	done   chan struct{} // closed when run returns

	// receive side; rmu is held while a message is handed to its handler so
	// that a newer connection of the same peer cannot overtake an older one.
	rmu       sync.Mutex
	inGen     uint64
	inRaw     atomic.Pointer[net.Conn] // current inbound connection, below TLS
	inc       uint64
	lastSeq   [256]uint64
	restarted [256]bool

	sent, dropped, received, missed atomic.Uint64
}

func newPeer(t *TCP, id NodeID, addr string) *peer {
	now := t.cfg.Now()
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		ctx: ctx, cancel: cancel,
		t: t, id: id, addr: addr,
		spare: make([]byte, 0, 64<<10),
		state: StateUnknown, since: now, added: now,
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

func (p *peer) setAddr(addr string) {
	p.mu.Lock()
	p.addr = addr
	p.mu.Unlock()
}

func (p *peer) member() Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Member{ID: p.id, Addr: p.addr, State: p.state, Since: p.since, RTT: p.rtt, Version: p.version}
}

// enqueue appends a data frame to the queue. The sequence number is taken
// even when the frame is dropped, so the receiver sees the gap.
func (p *peer) enqueue(ch Channel, payload []byte) error {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return ErrClosed
	}
	p.seq[ch]++
	if len(p.pending)+len(payload)+frameOverhead > p.t.cfg.QueueBytes {
		p.mu.Unlock()
		p.dropped.Add(1)
		p.t.stats.queueFull.Add(1)
		return ErrQueueFull
	}
	p.pending = appendData(p.pending, ch, p.seq[ch], payload)
	p.mu.Unlock()
	p.sent.Add(1)
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// run keeps an outbound connection to the peer and drains the queue into
// it, until stop.
func (p *peer) run() {
	defer close(p.done)
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
		conn, raw, br, res, err := p.t.dialStream(p.ctx, addr, StreamCluster, p.id)
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
		p.connected(conn, raw, res)
		err = p.serveOutbound(conn, br)
		p.disconnected(conn, err)
	}
}

// serveOutbound writes batches to conn and reads the peer's pongs until the
// connection fails or the peer is stopped.
func (p *peer) serveOutbound(conn net.Conn, br *bufio.Reader) error {
	readErr := make(chan error, 1)
	p.t.goFunc(func() { readErr <- p.readOutbound(conn, br) })
	defer func() {
		conn.Close()
		<-readErr
	}()
	var ping [lenPrefix + pingBodyLen]byte
	for {
		var quitting bool
		select {
		case <-p.kick:
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return err
		case <-p.quit:
			quitting = true
		}
		p.mu.Lock()
		doPing := p.pingDue
		p.pingDue = false
		batch := p.pending
		p.pending, p.spare = p.spare[:0], nil
		p.mu.Unlock()

		if quitting {
			// Flush what is queued and say goodbye, within a short bound.
			batch = appendGoodbye(batch)
			conn.SetWriteDeadline(time.Now().Add(min(p.t.cfg.Profile.WriteTimeout, 250*time.Millisecond)))
			conn.Write(batch)
			return nil
		}
		conn.SetWriteDeadline(time.Now().Add(p.t.cfg.Profile.WriteTimeout))
		var err error
		if doPing {
			stamp := uint64(p.t.cfg.Now().Sub(p.t.start))
			_, err = conn.Write(appendStamp(ping[:0], framePing, stamp))
		}
		if err == nil && len(batch) > 0 {
			_, err = conn.Write(batch)
			p.t.stats.bytesSent.Add(uint64(len(batch)))
		}
		p.mu.Lock()
		p.spare = batch[:0]
		p.mu.Unlock()
		if err != nil {
			return err // the batch is lost: the receiver sees the gap
		}
	}
}

// readOutbound reads the pongs the peer sends back on our connection.
func (p *peer) readOutbound(conn net.Conn, br *bufio.Reader) error {
	return p.t.readFrames(conn, br, func(body []byte) error {
		f, err := decodeBody(body)
		if err != nil || f.typ != framePong {
			p.t.stats.malformed.Add(1)
			return nil
		}
		now := p.t.cfg.Now()
		rtt := now.Sub(p.t.start) - time.Duration(f.stamp)
		p.pong(now, rtt)
		return nil
	})
}

func (p *peer) connected(conn, raw net.Conn, res handshakeResult) {
	p.mu.Lock()
	p.conn, p.raw = conn, raw
	p.version = res.version
	p.pingDue = true // a first round trip at once brings the peer up
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	p.t.log.Debug("cluster: connected", "peer", string(p.id), "version", res.version)
}

// disconnected records a broken outbound connection: a peer that was up
// becomes suspect at once; the dead timeout then decides.
func (p *peer) disconnected(conn net.Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conn, p.raw = nil, nil
	if p.state == StateUp && !p.stopping {
		p.setStateLocked(StateSuspect)
	}
}

// dialFailed: a refused connection means no process listens there, which is
// as certain as death gets, so a suspect peer is declared down at once.
func (p *peer) dialFailed(err error) {
	p.t.stats.dialFailures.Add(1)
	if errors.Is(err, ErrAuthFailed) || errors.Is(err, ErrBadHandshake) || errors.Is(err, ErrVersion) || errors.Is(err, ErrClusterName) {
		p.t.stats.handshakeFailures.Add(1)
		if errors.Is(err, ErrAuthFailed) {
			p.t.stats.authFailures.Add(1)
		}
		p.t.log.Warn("cluster: handshake with peer failed", "peer", string(p.id), "err", err)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		p.mu.Lock()
		if p.state == StateSuspect || p.state == StateUp {
			p.setStateLocked(StateDown)
		}
		p.mu.Unlock()
	}
}

// pong records an answered heartbeat.
func (p *peer) pong(now time.Time, rtt time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gap := now.Sub(p.lastPong)
	p.lastPong = now
	p.rtt = rtt
	switch p.state {
	case StateUp:
	case StateUnknown, StateSuspect:
		p.setStateLocked(StateUp)
	case StateDown, StateLeft:
		// Rise answered heartbeats in a row bring a dead peer back; a
		// lone answer after a long silence does not.
		if gap > p.t.cfg.Profile.SuspectTimeout {
			p.rise = 0
		}
		p.rise++
		if p.rise >= p.t.cfg.Profile.Rise {
			p.setStateLocked(StateUp)
		}
	}
}

// tick runs the liveness timers and, when ping is set, schedules a
// heartbeat; the heartbeat loop calls it for each peer.
func (p *peer) tick(now time.Time, ping bool) {
	prof := p.t.cfg.Profile
	p.mu.Lock()
	if ping && p.conn != nil && !p.stopping {
		p.pingDue = true
	}
	silent := now.Sub(p.lastPong)
	switch p.state {
	case StateUp:
		if silent > prof.DeadTimeout {
			p.setStateLocked(StateDown)
		} else if silent > prof.SuspectTimeout {
			p.setStateLocked(StateSuspect)
		}
	case StateSuspect:
		if silent > prof.DeadTimeout {
			p.setStateLocked(StateDown)
		}
	case StateUnknown:
		if now.Sub(p.added) > prof.DeadTimeout {
			p.setStateLocked(StateDown)
		}
	}
	kick := p.pingDue
	p.mu.Unlock()
	if kick {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// goodbye records that the peer announced it is leaving.
func (p *peer) goodbye() {
	p.mu.Lock()
	p.rise = 0
	p.setStateLocked(StateLeft)
	p.mu.Unlock()
}

func (p *peer) setStateLocked(s State) {
	if s == p.state {
		return
	}
	old := p.state
	p.state = s
	p.since = p.t.cfg.Now()
	if s != StateUp {
		p.rise = 0
	}
	if s == StateDown {
		// Both connections of a dead peer are stale: close them (below
		// TLS, which never blocks) so both sides start afresh.
		if c := p.inRaw.Load(); c != nil {
			(*c).Close()
		}
		if p.raw != nil {
			p.raw.Close()
		}
	}
	p.t.log.Info("cluster: peer state", "peer", string(p.id), "from", old.String(), "to", s.String())
	p.t.watch.emit(MemberEvent{Member: Member{ID: p.id, Addr: p.addr, State: s, Since: p.since, RTT: p.rtt, Version: p.version}, Old: old})
}

// beginStop tells the peer's goroutines to end: the writer flushes the
// queue and a goodbye within a short bound, a dial in progress is aborted.
func (p *peer) beginStop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	close(p.quit)
	p.cancel()
}

// finishStop waits for the peer's goroutines and closes its inbound
// connection; final, unless StateUnknown, becomes the peer's state.
func (p *peer) finishStop(final State) {
	<-p.done
	if c := p.inRaw.Load(); c != nil {
		(*c).Close()
	}
	if final != StateUnknown {
		p.mu.Lock()
		p.setStateLocked(final)
		p.mu.Unlock()
	}
}

// attachInbound makes conn the peer's current inbound connection and
// returns its generation; an older connection's reader stops delivering.
func (p *peer) attachInbound(raw net.Conn, incarnation uint64) uint64 {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if old := p.inRaw.Swap(&raw); old != nil {
		(*old).Close()
	}
	p.inGen++
	if p.inc != incarnation {
		if p.inc != 0 {
			// A new process: its sequence numbers start again, and every
			// channel's next message tells the block so.
			for i := range p.restarted {
				p.restarted[i] = true
			}
		}
		p.inc = incarnation
		p.lastSeq = [256]uint64{}
	}
	return p.inGen
}

func (p *peer) detachInbound(gen uint64) {
	p.rmu.Lock()
	if p.inGen == gen {
		p.inRaw.Store(nil)
	}
	p.rmu.Unlock()
}

// deliver hands a data frame to its channel's handler, in order, with the
// gap since the previous one.
func (p *peer) deliver(gen uint64, f frame) error {
	t := p.t
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if gen != p.inGen {
		return errSuperseded
	}
	last := p.lastSeq[f.channel]
	if f.seq <= last {
		t.stats.duplicate.Add(1) // at most once: never deliver a number twice
		return nil
	}
	p.lastSeq[f.channel] = f.seq
	m := Message{From: p.id, Channel: f.channel, Seq: f.seq, Missed: f.seq - last - 1,
		Restarted: p.restarted[f.channel], Payload: f.payload}
	p.restarted[f.channel] = false
	if m.Missed > 0 {
		p.missed.Add(m.Missed)
	}
	hb := t.handlers[f.channel].Load()
	if hb == nil {
		t.stats.unknownChannel.Add(1)
		return nil
	}
	p.received.Add(1)
	t.stats.messagesReceived.Add(1)
	hb.h.HandleMessage(m)
	return nil
}
