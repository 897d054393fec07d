package ratelimit

import (
	"hash/maphash"
	"math"
)

// Stats is a snapshot of a limiter's counters, for metrics.
type Stats struct {
	Pipes        int    // live pipes
	RefusedPipes uint64 // calls refused because a new pipe could not be made (MaxPipes, bad name)
	// Cluster mode only.
	MessagesSent      uint64
	MessagesReceived  uint64
	MessagesMalformed uint64
	SendErrors        uint64 // messages a peer's full queue dropped
	PeersInContact    int    // peers with an exchange both ways within Silence
	Quorum            bool   // this node and the peers in contact are a majority
}

// Stats returns the limiter's counters.
func (l *Limiter) Stats() Stats {
	s := Stats{Pipes: int(l.npipes.Load()), RefusedPipes: l.rejectedNew.Load(), Quorum: true}
	if cl := l.cl; cl != nil {
		s.MessagesSent = cl.msgsSent.Load()
		s.MessagesReceived = cl.msgsRecv.Load()
		s.MessagesMalformed = cl.msgsBad.Load()
		s.SendErrors = cl.sendErrs.Load()
		s.PeersInContact = int(cl.freshPeers.Load())
		s.Quorum = cl.quorum.Load()
	}
	return s
}

// PipeStats describes one pipe on this node.
type PipeStats struct {
	Limit    Limit   // the pipe's (cluster-wide) limit
	Share    float64 // calls/s this node may admit now
	Demand   float64 // smoothed calls/s asked for on this node
	Asked    uint64  // calls asked for since the pipe was made
	Admitted uint64  // calls admitted since the pipe was made
}

// Pipe returns the stats of a live pipe; ok is false if it does not exist.
// It does not make the pipe.
func (l *Limiter) Pipe(name string) (ps PipeStats, ok bool) {
	sh := &l.shards[maphash.String(l.seed, name)%shardCount]
	sh.mu.RLock()
	p := sh.pipes[name]
	sh.mu.RUnlock()
	if p == nil {
		return PipeStats{}, false
	}
	return PipeStats{
		Limit:    p.limit,
		Share:    math.Float64frombits(p.shareBits.Load()),
		Demand:   math.Float64frombits(p.demandBits.Load()),
		Asked:    p.asked.Load(),
		Admitted: p.admitted.Load(),
	}, true
}
