package raftowner

import (
	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// A confirmation round is how the leader makes sure that no newer leader
// existed when the renewals it is about to acknowledge were sent.
//
// The round starts after every renewal of its batch arrived. It asks each
// voter for its current Raft term with a fresh nonce; a voter's answer is
// therefore made after the round started, hence after the renewals were
// sent. The round succeeds when a quorum (this leader included) answered
// with this leader's term. A newer leader needs the votes of a quorum in a
// higher term, and a voter moves to the higher term before it votes; the
// two quorums share a voter, which was still at this term when it answered,
// so the newer leader was elected after it answered, after the renewals
// were sent. Each renewal's lease then ends, by the ClockDrift and MaxPause
// assumptions, before that newer leader may reassign anything.
//
// raft's VerifyLeader is not used for this: it also counts heartbeat
// answers that were in flight when it started, so a follower's answer may
// predate the renewal by a whole RPC time, and its futures can hang
// (hashicorp/raft#498).
type confirmRound struct {
	nonce  uint64
	term   uint64
	voters map[cluster.NodeID]bool // the other voters, true once they confirmed
	need   int                     // confirmations still needed
	batch  []renewal
}

// confirmation is a voter's answer.
type confirmation struct {
	from  cluster.NodeID
	nonce uint64
	term  uint64
}

// startRound asks the voters to confirm this leader's term for batch. It
// returns nil when this node is no longer the leader of ls.term.
func (n *Node) startRound(ls *leaderState, batch []renewal) *confirmRound {
	// The leader's own confirmation is recorded like a voter's answer.
	if n.raft.State() != raft.Leader || n.confirmTerm() != ls.term {
		return nil
	}
	f := n.raft.GetConfiguration()
	if n.await(f) != nil {
		return nil
	}
	ls.nonce++
	ls.roundStarted(ls.nonce, n.cfg.Now())
	cr := &confirmRound{nonce: ls.nonce, term: ls.term, voters: map[cluster.NodeID]bool{}, batch: batch}
	total, self := 0, 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		total++
		if id := cluster.NodeID(s.ID); id != n.cfg.ID {
			cr.voters[id] = false
		} else {
			self = 1 // a leader that is a voter confirms itself
		}
	}
	cr.need = total/2 + 1 - self
	if cr.need <= 0 {
		return cr
	}
	ask := message{Kind: msgConfirm, Seq: cr.nonce, Index: cr.term}.encode()
	for id := range cr.voters {
		_ = n.tr.Send(id, cluster.ChannelOwnership, ask)
	}
	return cr
}

func (cr *confirmRound) done() bool { return cr.need <= 0 }

// count records an answer and reports whether the round is now confirmed.
func (cr *confirmRound) count(c confirmation) bool {
	confirmed, voter := cr.voters[c.from]
	if !voter || confirmed || c.nonce != cr.nonce || c.term != cr.term {
		return false
	}
	cr.voters[c.from] = true
	cr.need--
	return cr.done()
}
