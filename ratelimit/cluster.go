package ratelimit

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/sipha/sipha/cluster"
)

const (
	chRatelimit = cluster.ChannelRatelimit
	// pruneEvery rounds, demand entries a peer stopped sending are freed.
	pruneEvery = 64
)

// peerState is what this node knows of one peer's limiter.
type peerState struct {
	id        cluster.NodeID
	inc       uint64
	lastHeard int64  // limiter ns of the last message; creation time if none
	lastTick  uint64 // the peer's newest round heard
	acked     uint64 // this node's newest round the peer said it heard
	heard     bool   // a message came from the peer since this node started
	everAcked bool   // the peer acknowledged a round of this node (of any of its incarnations)
	bye       bool   // the peer said it is leaving, and has not spoken since
	member    bool   // listed by the transport and not left, this round
	fresh     bool   // heard from within Silence
	gone      bool   // nothing heard for Silence × (1+ClockDrift)
	demands   map[string]*remoteDemand
}

type remoteDemand struct {
	rate float64
	tick uint64
}

// demandOf is the peer's demand for a pipe: what it said in its newest
// round or the one before (a round may span several messages), else 0.
func (ps *peerState) demandOf(name string) float64 {
	d := ps.demands[name]
	if d == nil || d.tick+1 < ps.lastTick {
		return 0
	}
	return d.rate
}

// clusterState runs cluster mode: it keeps the peers' demand, decides this
// node's share of every pipe each round, and sends the node's demand.
//
// Shares. With D_i the smoothed demand of node i for a pipe (calls/s asked
// for, admitted or not), L the pipe's limit, n the nodes counted and
// δ = Floor × L / n, node i admits
//
//	share_i = D_i + (L − Σ_j D_j) / n             while Σ_j D_j < L
//	share_i = L × (D_i + δ) / Σ_j (D_j + δ)       otherwise
//
// The shares of the counted nodes add up to L. While the nodes ask for less
// than L together, each gets its demand and an even part of the rest, so a
// node that was idle admits a sudden load at once (with everyone idle the
// limit is split evenly). Over the limit, each admits its demand-proportional
// share and the cluster admits L; δ is the floor there: an idle node keeps a
// small share (and a bucket of at least one call) so its first call is
// admitted before any message is exchanged. It costs at most Floor × L of
// admissions left unused while some node is idle.
//
// Own demand. The peers count this node's demand as it was in some round
// since the newest one they all acknowledged; the node counts its own as
// of that round too, so it grows only after the peers saw it grow (a round
// or two late) and its share matches what they leave it.
//
// Silence. A node cannot tell a dead peer from one cut off by a partition,
// so it follows two clocks (T = Silence, ε = ClockDrift):
//   - A node that has heard nothing from some peer for T, or whose rounds
//     the peers have not acknowledged for 8 rounds, stops growing: its
//     share is at most safe, the share of its last round in full contact
//     (L ÷ known nodes for a pipe with no such round).
//   - A node that has heard nothing from a peer for T × (1+ε) drops it from
//     the count, taking back its share, but only if itself and the peers
//     it heard from within T × (1+ε) are a majority of the known nodes
//     (half, with the lowest node ID among them, breaks a tie). A minority
//     keeps its safe share for as long as the partition lasts.
//   - A node that starts beside peers takes only its floor until each has
//     acknowledged one of its rounds: the others may be sharing the whole
//     limit without it. A peer it never heard from counts as silent only
//     after JoinGrace (2 s), time for the transport to connect.
//
// So the side cut off never counts more own demand than the other side
// last saw, and holds at most its safe share from T on, while the other
// side takes the whole limit only from T × (1+ε) on: during a partition the
// cluster admits at most L plus the minority side's safe shares.
type clusterState struct {
	l    *Limiter
	tr   cluster.Transport
	self cluster.NodeID
	inc  uint64

	mu      sync.Mutex
	peers   map[cluster.NodeID]*peerState
	round   uint64
	counted []*peerState // peers whose demand counts this round
	free    bool         // every counted peer is fresh and acknowledged a recent round
	acked   uint64       // the oldest of this node's rounds the counted peers acknowledged
	joining bool         // a known peer has never acknowledged a round of this node
	known   int          // nodes known and not left, this node included
	enc     encoder
	dec     demandMsg
	acks    []ackEntry

	msgsSent, msgsRecv, msgsBad, sendErrs atomic.Uint64
	quorum                                atomic.Bool
	freshPeers                            atomic.Int64
}

func newClusterState(l *Limiter) *clusterState {
	cl := &clusterState{
		l: l, tr: l.cfg.Transport, self: l.cfg.Transport.LocalID(),
		inc:   rand.Uint64() | 1,
		peers: make(map[cluster.NodeID]*peerState),
	}
	cl.mu.Lock()
	cl.classify(0)
	cl.mu.Unlock()
	return cl
}

func (cl *clusterState) peer(id cluster.NodeID, now int64) *peerState {
	ps := cl.peers[id]
	if ps == nil {
		ps = &peerState{id: id, lastHeard: now, demands: make(map[string]*remoteDemand)}
		cl.peers[id] = ps
	}
	return ps
}

// classify sorts the peers for this round (see clusterState). Called with
// mu held.
func (cl *clusterState) classify(now int64) {
	for _, ps := range cl.peers {
		ps.member = false
	}
	for _, m := range cl.tr.Members() {
		if m.State != cluster.StateLeft {
			cl.peer(m.ID, now).member = true
		}
	}
	silence := int64(cl.l.cfg.Silence)
	gone := int64(float64(silence) * (1 + cl.l.cfg.ClockDrift))
	grace := int64(cl.l.cfg.JoinGrace)
	known, reach := 1, 1
	cl.joining = false
	minAll, minReach := cl.self, cl.self
	for id, ps := range cl.peers {
		if ps.bye || !ps.member {
			if now-ps.lastHeard >= gone && !ps.member {
				delete(cl.peers, id)
			}
			continue
		}
		known++
		minAll = min(minAll, id)
		ps.fresh = ps.heard && now-ps.lastHeard < silence
		ps.gone = now-ps.lastHeard >= gone && (ps.heard || now-ps.lastHeard >= grace)
		cl.joining = cl.joining || (!ps.everAcked && !ps.gone)
		if !ps.gone {
			// In contact for the majority count means heard from: a
			// late acknowledgement (a retransmission holding the stream
			// up) must not cost a majority and bring a dead peer back.
			reach++
			minReach = min(minReach, id)
		}
	}
	quorum := 2*reach > known || (2*reach == known && minReach == minAll)
	cl.counted, cl.free, cl.acked = cl.counted[:0], true, cl.round
	for _, ps := range cl.peers {
		if ps.bye || !ps.member || (quorum && ps.gone) {
			continue
		}
		cl.counted = append(cl.counted, ps)
		cl.free = cl.free && ps.fresh
		cl.acked = min(cl.acked, ps.acked)
	}
	if cl.acked == 0 || cl.round-cl.acked >= sentRing {
		cl.free = false
	}
	cl.known = known
	cl.quorum.Store(quorum)
	fresh := 0
	for _, ps := range cl.counted {
		if ps.fresh {
			fresh++
		}
	}
	cl.freshPeers.Store(int64(fresh))
}

// share sets p's share from the demands of this round. Called with mu held.
func (cl *clusterState) share(p *pipe, now int64) {
	if p.unlimited || p.deny {
		return
	}
	lim := p.limit.Rate
	delta := cl.l.cfg.Floor * lim / float64(1+len(cl.counted))
	// Every counted peer has seen this node's demand of round cl.acked (or
	// a newer one): counting its own demand as of that round keeps this
	// node from growing before the peers saw it grow, at the cost of
	// following its demand a round or two late.
	own := p.demand
	if cl.free && cl.acked < cl.round {
		own = p.sent[cl.acked%sentRing]
	}
	total := own
	for _, ps := range cl.counted {
		total += ps.demandOf(p.name)
	}
	var s float64
	if n := float64(1 + len(cl.counted)); total < lim {
		// Under the limit: each node its demand plus an even part of
		// what is left, so a node that was idle takes a sudden load at
		// once (demand-proportional shares gave it a sliver).
		s = own + (lim-total)/n
	} else {
		s = lim * (own + delta) / (total + n*delta)
	}
	switch {
	case cl.free:
		p.safe = s
	case cl.joining:
		// A node that starts (or restarts) beside peers that have not
		// acknowledged it yet takes only its floor: the peers may be
		// running the whole limit among themselves, and make room only
		// once they count its demand. Peers silent for T × (1+ε) are
		// handled as silent.
		s = min(s, p.safe, delta)
	default:
		s = min(s, p.safe)
	}
	burst := float64(p.limit.Burst)
	if lim > 0 {
		burst *= s / lim
	}
	p.setShare(s, burst, now)
}

// initShare gives a new pipe its first share, from the last round's view.
func (cl *clusterState) initShare(p *pipe, now int64) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	p.safe = p.limit.Rate / float64(cl.known)
	cl.share(p, now)
}

// beginRound starts a round: classify the peers and write the header.
// It takes mu; endRound releases it.
func (cl *clusterState) beginRound(now int64) {
	cl.mu.Lock()
	cl.round++
	cl.classify(now)
	cl.acks = cl.acks[:0]
	budget := cl.l.cfg.MaxMessageBytes / 2
	for _, ps := range cl.peers {
		if ps.lastTick == 0 || len(cl.acks) == maxAcks {
			continue
		}
		if budget -= len(ps.id) + 30; budget < 0 {
			break // more peers than fit: unacknowledged ones see this node as out of contact
		}
		cl.acks = append(cl.acks, ackEntry{id: []byte(ps.id), inc: ps.inc, tick: ps.lastTick})
	}
	cl.enc.start(0, cl.inc, cl.round, cl.acks)
}

// update decides p's share for this round and adds its demand to the
// round's messages.
func (cl *clusterState) update(p *pipe, now int64) {
	cl.share(p, now)
	p.sent[cl.round%sentRing] = p.demand
	if p.unlimited || p.deny || p.demand < 1.0/milli {
		return
	}
	if cl.enc.full(p.name, cl.l.cfg.MaxMessageBytes) {
		cl.send()
		cl.enc.next()
	}
	cl.enc.add(p.name, p.demand)
}

// endRound sends the round's last message (also when it has no pipes: it
// carries the acks and says this node is alive) and releases mu.
func (cl *clusterState) endRound() {
	cl.send()
	if cl.round%pruneEvery == 0 {
		for _, ps := range cl.peers {
			for name, d := range ps.demands {
				if d.tick+1 < ps.lastTick {
					delete(ps.demands, name)
				}
			}
		}
	}
	cl.mu.Unlock()
}

func (cl *clusterState) send() {
	cl.msgsSent.Add(1)
	if err := cl.tr.Broadcast(chRatelimit, cl.enc.buf); err != nil {
		// A full queue drops the message for one peer; the next round
		// replaces it, and a longer silence is what Silence is for.
		cl.sendErrs.Add(1)
	}
}

// sayGoodbye tells the peers this node stops, so they take its share at
// once instead of after the silence timeout.
func (cl *clusterState) sayGoodbye() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.round++
	cl.enc.start(flagLeaving, cl.inc, cl.round, nil)
	cl.send()
}

// HandleMessage takes a peer's demand message. It runs on the transport's
// receiving goroutine of that peer and holds mu for the time it takes to
// read the message, which is short.
func (cl *clusterState) HandleMessage(m cluster.Message) {
	now := cl.l.now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err := cl.dec.decode(m.Payload); err != nil {
		cl.msgsBad.Add(1)
		cl.l.cfg.Logger.Debug("ratelimit: dropped a malformed demand message", "from", m.From, "err", err)
		return
	}
	cl.msgsRecv.Add(1)
	d := &cl.dec
	ps := cl.peer(m.From, now)
	if ps.inc != d.inc || m.Restarted {
		// A new incarnation: what it said before no longer holds.
		ps.inc, ps.lastTick, ps.acked = d.inc, 0, 0
		clear(ps.demands)
	}
	ps.lastHeard, ps.heard = now, true
	ps.bye = d.flags&flagLeaving != 0
	ps.lastTick = max(ps.lastTick, d.tick)
	for _, a := range d.acks {
		if string(a.id) == string(cl.self) && a.inc == cl.inc && a.tick <= cl.round {
			ps.acked, ps.everAcked = max(ps.acked, a.tick), true
		}
	}
	for _, pd := range d.pipes {
		rd := ps.demands[string(pd.name)]
		if rd == nil {
			rd = &remoteDemand{}
			ps.demands[string(pd.name)] = rd
		}
		rd.rate, rd.tick = float64(pd.milli)/milli, d.tick
	}
}
