package cluster

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type atomicConn = atomic.Pointer[net.Conn]

// peer is one remote node: its send queue, the two connections this node
// dials to it (data, and heartbeat), its liveness, and the receive state of
// the connections it dialed to us.
//
// Heartbeats have a connection of their own so that liveness never waits
// behind data: a burst, a retransmission stall or a slow reader on the data
// path does not delay a ping, and a peer is declared down only when its
// process or the network path is gone.
type peer struct {
	t  *TCP
	id NodeID

	mu       sync.Mutex
	addr     string
	pending  []byte // encoded frames waiting for the writer
	spare    []byte // the writer's buffer between batches
	seq      [256]uint64
	sent     uint64 // messages queued
	queued   uint64 // messages in pending
	lastErr  string // the last dial error logged at Warn, to log each reason once
	waiting  bool   // the data writer sleeps until kicked
	stopping bool
	dataRaw  net.Conn // current outbound connections below TLS, nil when none
	hbRaw    net.Conn
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
	kick   chan struct{} // wakes the data writer; capacity 1
	ping   chan struct{} // wakes the heartbeat writer; capacity 1
	quit   chan struct{} // closed by stop
	loops  sync.WaitGroup

	// receive side; rmu is held while a message is handed to its handler so
	// that a newer connection of the same peer cannot overtake an older one.
	rmu       sync.Mutex
	inGen     uint64
	inRaw     atomicConn // current inbound data connection, below TLS
	inHB      atomicConn // current inbound heartbeat connection
	inc       uint64
	lastSeq   [256]uint64
	restarted [256]bool
	received  uint64 // messages handed to a handler, under rmu

	dropped, missed atomic.Uint64
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
		ping: make(chan struct{}, 1),
		quit: make(chan struct{}),
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
	p.seq[ch]++ // taken even when dropped, so the receiver sees the gap
	if p.state == StateDown || p.state == StateLeft {
		p.mu.Unlock()
		p.dropped.Add(1)
		p.t.stats.peerDown.Add(1)
		return ErrPeerDown
	}
	if len(p.pending)+len(payload)+frameOverhead > p.t.cfg.QueueBytes {
		p.mu.Unlock()
		p.dropped.Add(1)
		p.t.stats.queueFull.Add(1)
		return ErrQueueFull
	}
	p.pending = appendData(p.pending, ch, p.seq[ch], payload)
	p.sent++
	p.queued++
	// Wake the writer only when it sleeps: while it writes, frames queued
	// meanwhile go out in its next batch without a channel operation.
	w := p.waiting
	p.waiting = false
	p.mu.Unlock()
	if w {
		wake(p.kick)
	}
	return nil
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
		// Redials repeat the same failure every backoff; warn once per
		// reason and keep the repeats for debug logs.
		p.mu.Lock()
		repeat := p.lastErr == err.Error()
		p.lastErr = err.Error()
		p.mu.Unlock()
		if repeat {
			p.t.log.Debug("cluster: handshake with peer failed again", "peer", string(p.id), "err", err)
		} else {
			p.t.log.Warn("cluster: handshake with peer failed", "peer", string(p.id), "err", err)
		}
		return
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

// tick runs the liveness timers and, when ping is set, wakes the heartbeat
// writer; the heartbeat loop calls it for each peer.
func (p *peer) tick(now time.Time, ping bool) {
	prof := p.t.cfg.Profile
	if ping {
		wake(p.ping)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
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
}

// wake signals a capacity-1 channel without blocking.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
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
	if s == StateDown || s == StateLeft {
		// A dead peer's queue would only grow and go stale: drop it (the
		// peer sees the gap when it is back and repairs).
		p.dropped.Add(p.queued)
		p.t.stats.peerDown.Add(p.queued)
		p.pending, p.queued = p.pending[:0], 0
	}
	if s == StateDown {
		// Both connections of a dead peer are stale: close them (below
		// TLS, which never blocks) so both sides start afresh.
		p.closeConns()
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
// connections; final, unless StateUnknown, becomes the peer's state.
func (p *peer) finishStop(final State) {
	p.loops.Wait()
	p.mu.Lock()
	p.closeConns()
	p.mu.Unlock()
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

// deliverLocked hands a data frame to its channel's handler, in order,
// with the gap since the previous one. The caller holds rmu and has checked
// that its connection is the peer's current one.
func (p *peer) deliverLocked(f frame) {
	t := p.t
	last := p.lastSeq[f.channel]
	if f.seq <= last {
		t.stats.duplicate.Add(1) // at most once: never deliver a number twice
		return
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
		return
	}
	p.received++
	hb.h.HandleMessage(m)
}
