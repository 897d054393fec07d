package usrloc

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Buckets move between nodes in flow-controlled streams: the puller names
// the buckets it wants (msgSyncReq), the donor sends them in chunks of
// whole buckets (msgSyncChunk) and keeps at most Window chunks ahead of the
// puller's acknowledgements (msgSyncAck). A join, a verification and an
// anti-entropy repair are all such pulls, so no repair can flood a peer's
// queue (the sync storms of Kamailio issue 399).

type pullPurpose uint8

const (
	pullRepair pullPurpose = iota
	pullJoin
	pullVerify
)

// pull is a stream this node receives.
type pull struct {
	id      uint64
	peer    cluster.NodeID
	buckets []int
	pos     int    // buckets[:pos] fully received
	nextSeq uint64 // the chunk expected next
	purpose pullPurpose
	last    time.Time // last progress
	// gapAt is when a gap in the peer's messages was seen with no
	// progress since; zero when none.
	gapAt time.Time
	// notDominated counts donor versions that this node does not hold at
	// the same or a newer version after merging (verification only).
	notDominated int
}

// startPull asks peer for buckets. r.mu must be held.
func (r *Replicator) startPullLocked(peer cluster.NodeID, buckets []int, purpose pullPurpose) *pull {
	r.nextID++
	p := &pull{id: r.nextID, peer: peer, buckets: buckets, nextSeq: 1, purpose: purpose, last: r.cfg.Now()}
	r.pulls[p.id] = p
	r.stats.pullsStarted.Add(1)
	if err := r.send(peer, &message{typ: msgSyncReq, id: p.id, buckets: buckets}); err != nil {
		r.log.Debug("usrloc: pull request", "peer", peer, "err", err)
	}
	return p
}

// chunk applies one chunk of a pull.
func (r *Replicator) chunk(from cluster.NodeID, m *message) {
	r.stats.chunksRecv.Add(1)
	r.mu.Lock()
	p := r.pulls[m.id]
	if p == nil || p.peer != from {
		r.mu.Unlock()
		return // a stale stream
	}
	if m.refused {
		r.abortLocked(p, "donor not synced")
		if r.join != nil && p.purpose != pullRepair {
			r.join.failed(p.peer)
			r.join.refusedBy(p.peer)
		}
		r.mu.Unlock()
		return
	}
	if m.seq != p.nextSeq || m.cursor < p.pos || m.cursor > len(p.buckets) {
		r.abortLocked(p, "chunk out of sequence")
		r.mu.Unlock()
		return
	}
	purpose := p.purpose
	old := r.staleFromLocked(from) // nonzero: the peer was away longer than TombstoneTTL
	var seen map[seenKey]struct{}
	if r.join != nil && p == r.join.pull {
		seen = r.join.seen
	}
	r.mu.Unlock()

	// Merging outside the lock: chunks of one peer arrive one at a time.
	if purpose == pullJoin {
		r.reserveFor(m.recs)
	}
	bad := 0
	for i := range m.recs {
		w := &m.recs[i]
		if seen != nil {
			seen[keyOfWire(w)] = struct{}{}
		}
		// From a peer back from a long absence, a version older than the
		// absence that this node does not hold was deleted here and its
		// tombstone purged since: taking it would resurrect it.
		if old != 0 && w.HLC < old && !r.store.holds(w) {
			r.stats.skippedStale.Add(1)
			continue
		}
		if _, err := r.store.merge(w); err != nil {
			r.stats.mergeErrors.Add(1)
		}
		if purpose == pullVerify && !r.store.dominates(w) {
			bad++
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pulls[m.id] != p {
		return
	}
	p.notDominated += bad
	p.pos = m.cursor
	p.nextSeq++
	p.last = r.cfg.Now()
	p.gapAt = time.Time{} // the next chunk in order: what was lost was not this stream's
	r.send(from, &message{typ: msgSyncAck, id: p.id, seq: m.seq})
	if p.purpose == pullJoin && r.join != nil {
		r.join.pos = r.join.base + p.pos
	}
	if m.last {
		if p.pos != len(p.buckets) {
			r.abortLocked(p, "stream ended early")
			return
		}
		delete(r.pulls, p.id)
		r.stats.pullsDone.Add(1)
		r.pullDoneLocked(p)
	}
}

// reserveFor sizes the tables of the buckets in recs (a donor sends whole
// buckets, one after another) before a join merges them into a store that
// holds little of them yet.
func (r *Replicator) reserveFor(recs []wireRec) {
	for i := 0; i < len(recs); {
		b := bucketOf(recs[i].AOR)
		j := i + 1
		for j < len(recs) && bucketOf(recs[j].AOR) == b {
			j++
		}
		r.store.reserve(b, j-i)
		i = j
	}
}

// abortLocked ends a pull that broke; the join resumes where it stopped,
// a verification starts again, a repair is asked for again.
func (r *Replicator) abortLocked(p *pull, why string) {
	delete(r.pulls, p.id)
	r.stats.pullsAborted.Add(1)
	r.log.Debug("usrloc: pull aborted", "peer", p.peer, "why", why, "received", p.pos, "of", len(p.buckets))
	switch p.purpose {
	case pullJoin, pullVerify:
		if r.join != nil {
			r.join.pull = nil
			r.join.verifying = false
		}
	case pullRepair:
		r.repair[p.peer] = true
	}
}

// gapFrom handles a gap in peer's messages for the pulls from it. A
// restarted peer has forgotten its streams: they end. Otherwise the lost
// message may be anything the peer sent (most often broadcasts it dropped
// while it counted this node down): a lost chunk shows as the next chunk
// out of sequence, and a stream that makes no progress for gapGrace after
// the gap is taken as broken, instead of ending every healthy stream at
// once (a join of 1M bindings would start its pull again).
func (r *Replicator) gapFrom(peer cluster.NodeID, restarted bool) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pulls {
		switch {
		case p.peer != peer:
		case restarted:
			r.abortLocked(p, "peer restarted")
		case p.gapAt.IsZero():
			p.gapAt = now
		}
	}
}

// gapGrace is how long a pull may go without progress after a gap in its
// peer's messages before it is taken as broken.
func (r *Replicator) gapGrace() time.Duration { return r.cfg.SyncTimeout / 4 }

// checkPulls aborts pulls whose donor went down or quiet. A suspect donor
// (heartbeats late, as when the host starves the process) keeps its pull:
// only a donor declared down, whose queued messages the transport has
// dropped, or silence ends it.
func (r *Replicator) checkPulls(now time.Time) {
	alive := map[cluster.NodeID]bool{}
	for _, m := range r.tr.Members() {
		alive[m.ID] = m.State.Alive()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pulls {
		switch {
		case !alive[p.peer]:
			r.abortLocked(p, "donor down")
			if r.join != nil && p.purpose != pullRepair {
				r.join.failed(p.peer)
			}
		case !p.gapAt.IsZero() && now.Sub(p.gapAt) > r.gapGrace():
			r.abortLocked(p, "gap in the peer's messages, then no progress")
		case now.Sub(p.last) > r.cfg.SyncTimeout:
			r.abortLocked(p, "donor silent")
			if r.join != nil && p.purpose != pullRepair {
				r.join.failed(p.peer)
			}
		}
	}
}

// servingKey names a stream this node sends.
type servingKey struct {
	peer cluster.NodeID
	id   uint64
}

type serveSess struct {
	acked  atomic.Uint64
	wake   chan struct{}
	done   chan struct{}
	once   sync.Once
	cancel func()
}

// serve starts streaming buckets to a puller.
func (r *Replicator) serve(to cluster.NodeID, id uint64, buckets []int) {
	bs := append([]int(nil), buckets...)
	s := &serveSess{wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.cancel = func() { s.once.Do(func() { close(s.done) }) }
	key := servingKey{to, id}
	r.mu.Lock()
	select {
	case <-r.quit:
		r.mu.Unlock()
		return
	default:
	}
	// A peer pulls at most a few streams at once; an old one it still has
	// open from before a restart is cut so it cannot pile up.
	n := 0
	for k, old := range r.serving {
		if k.peer == to {
			n++
			if n >= 4 {
				old.cancel()
			}
		}
	}
	r.serving[key] = s
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.serving, key)
			r.mu.Unlock()
		}()
		r.stream(to, id, bs, s)
	}()
}

// ack records a puller's acknowledgement.
func (r *Replicator) ack(from cluster.NodeID, id, seq uint64) {
	r.mu.Lock()
	s := r.serving[servingKey{from, id}]
	r.mu.Unlock()
	if s == nil {
		return
	}
	for {
		old := s.acked.Load()
		if seq <= old || s.acked.CompareAndSwap(old, seq) {
			break
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stream sends buckets to a puller in chunks of whole buckets, at most
// Window chunks ahead of its acknowledgements.
func (r *Replicator) stream(to cluster.NodeID, id uint64, buckets []int, s *serveSess) {
	if !r.waitAlive(to, s) {
		return
	}
	if !r.isSynced.Load() {
		// Not a reference for anyone before it is synced itself.
		buf := encode(nil, &message{typ: msgSyncChunk, id: id, seq: 1, last: true, refused: true})
		r.tr.Send(to, cluster.ChannelUsrloc, buf)
		return
	}
	var recs []wireRec
	var buf []byte
	size := 0
	seq := uint64(0)
	idle := time.NewTimer(r.cfg.SyncTimeout)
	defer idle.Stop()
	for i, b := range buckets {
		n0 := len(recs)
		recs = r.store.appendBucket(b, recs)
		for j := n0; j < len(recs); j++ {
			size += wireSize(&recs[j])
		}
		last := i == len(buckets)-1
		if size < r.cfg.ChunkBytes && !last {
			continue
		}
		seq++
		// Flow control: wait for the window to open.
		for seq > s.acked.Load()+uint64(r.cfg.Window) {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(r.cfg.SyncTimeout)
			select {
			case <-s.wake:
			case <-s.done:
				return
			case <-r.quit:
				return
			case <-idle.C:
				r.log.Debug("usrloc: puller stopped acknowledging", "peer", to)
				return
			}
		}
		if !r.waitAlive(to, s) {
			return
		}
		buf = encode(buf[:0], &message{typ: msgSyncChunk, id: id, seq: seq, cursor: i + 1, last: last, recs: recs})
		if err := r.tr.Send(to, cluster.ChannelUsrloc, buf); err != nil {
			// The puller sees the gap or the silence and asks again.
			r.stats.sendErrors.Add(1)
			return
		}
		r.stats.chunksSent.Add(1)
		recs = recs[:0]
		size = 0
	}
	if len(buckets) == 0 {
		buf = encode(buf[:0], &message{typ: msgSyncChunk, id: id, seq: 1, cursor: 0, last: true})
		r.tr.Send(to, cluster.ChannelUsrloc, buf)
	}
}

// waitAlive waits, for at most SyncTimeout, until this node's transport
// counts the puller alive, and reports whether it does. A restarted
// node asks for a stream as soon as it sees its donor up, while the
// donor may still count it down for a few heartbeats; the transport
// drops what is sent to a peer it counts down, and a stream begun then
// would be lost whole, the puller waiting out SyncTimeout for it.
func (r *Replicator) waitAlive(to cluster.NodeID, s *serveSess) bool {
	const poll = 20 * time.Millisecond
	for waited := time.Duration(0); ; waited += poll {
		if r.peerAlive(to) {
			return true
		}
		if waited >= r.cfg.SyncTimeout {
			r.log.Debug("usrloc: puller not seen alive, stream not sent", "peer", to)
			return false
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-s.done:
			t.Stop()
			return false
		case <-r.quit:
			t.Stop()
			return false
		}
	}
}

func (r *Replicator) peerAlive(id cluster.NodeID) bool {
	for _, m := range r.tr.Members() {
		if m.ID == id {
			return m.State.Alive()
		}
	}
	return false
}

// wireSize estimates the encoded size of a record.
func wireSize(w *wireRec) int {
	return 40 + len(w.AOR) + len(w.F.Contact) + len(w.F.Received) + len(w.F.CallID) + len(w.F.Instance) +
		len(w.F.UserAgent) + len(w.F.Path) + len(w.F.Socket) + len(w.Node)
}
