package raftowner

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// A new leader may hand a node's resources on only once every lease an
// earlier leader acknowledged has surely run out. It cannot know when that
// earlier leader last acknowledged one, so it needs a point in time that is
// surely later than the send time s of every such renewal, and waits
// ReassignDelay from there.
//
// Its own election is such a point (see confirmRound): every acknowledged
// renewal was confirmed by a quorum at the old term after s, and one voter
// of that quorum voted in the new election after moving to the new term.
// That costs a leader death raft's election time plus ReassignDelay.
//
// The takeover bound is an earlier such point. Each voter remembers when it
// last answered a confirmation round (answerLog). A new leader of term t
// asks every voter, once the voter is at term t, how long ago it last
// answered with a term below t; from then on it never will, since terms
// only grow. Any quorum of answers intersects the quorum that confirmed an
// acknowledged renewal, so the quorum-th earliest answer time, converted to
// the leader's clock (the reply's receipt time minus the reported age
// shrunk by ε), is later than s. The leader waits ReassignDelay from the
// earlier of that bound and its election. A leader that died is silent
// from its death on, so its followers' last answers date from about then:
// the election overlaps the wait instead of preceding it.
//
// A restarted voter has forgotten its answers; it reports its start, which
// is later than anything it answered before. Raft's single-server
// membership changes keep the quorums of consecutive configurations
// intersecting, as the confirmation rounds already assume.

// answerLog is a voter's record of its confirmation answers.
type answerLog struct {
	mu     sync.Mutex
	term   uint64    // the highest term answered
	at     time.Time // the last answer, of any term
	before time.Time // the last answer with a term below term
}

func newAnswerLog(start time.Time) *answerLog {
	return &answerLog{at: start, before: start}
}

func (l *answerLog) recordLocked(term uint64, now time.Time) {
	if term > l.term {
		l.before, l.term = l.at, term
	}
	l.at = now
}

// lastBelowLocked is when this node last answered with a term below t, or
// false when it has answered a higher term than t.
func (l *answerLog) lastBelowLocked(t uint64) (time.Time, bool) {
	switch {
	case l.term < t:
		return l.at, true
	case l.term == t:
		return l.before, true
	}
	return time.Time{}, false
}

// confirmTerm reads the current term to answer a confirmation round with
// and records the answer. Reading and recording under one lock orders each
// answer against lastAnswer's term check: an answer recorded later than a
// report carries a term at least the reported one.
func (n *Node) confirmTerm() uint64 {
	n.answers.mu.Lock()
	defer n.answers.mu.Unlock()
	term := n.raft.CurrentTerm()
	n.answers.recordLocked(term, n.cfg.Now())
	return term
}

// lastAnswer reports how long ago this node last answered a confirmation
// round with a term below t, once it is at term t itself.
func (n *Node) lastAnswer(t uint64) (time.Duration, bool) {
	n.answers.mu.Lock()
	defer n.answers.mu.Unlock()
	if n.raft.CurrentTerm() != t {
		return 0, false // not there yet (the leader asks again), or deposed
	}
	last, ok := n.answers.lastBelowLocked(t)
	if !ok {
		return 0, false
	}
	return max(n.cfg.Now().Sub(last), 0), true
}

// answerReport is a voter's reply to a takeover query.
type answerReport struct {
	from cluster.NodeID
	term uint64
	ago  time.Duration
}

func (n *Node) handleLastAnswerQuery(from cluster.NodeID, m message) {
	ago, ok := n.lastAnswer(m.Index)
	if !ok {
		return
	}
	r := message{Kind: msgLastAnswered, Seq: uint64(ago), Index: m.Index}
	_ = n.tr.Send(from, cluster.ChannelOwnership, r.encode())
}

// takeover gathers the takeover bound for one term (leader loop only).
type takeover struct {
	voters  map[cluster.NodeID]bool // true once reported
	quorum  int
	reports []time.Time // answer bounds on this leader's clock
	bound   time.Time   // zero until a quorum reported
}

// startTakeover records this leader's own answers and asks the other voters.
func (n *Node) startTakeover(ls *leaderState) {
	f := n.raft.GetConfiguration()
	if n.await(f) != nil {
		return
	}
	tk := &takeover{voters: map[cluster.NodeID]bool{}}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			tk.voters[cluster.NodeID(s.ID)] = false
		}
	}
	tk.quorum = len(tk.voters)/2 + 1
	ls.takeover = tk
	if _, voter := tk.voters[n.cfg.ID]; voter {
		if ago, ok := n.lastAnswer(ls.term); ok {
			n.countReport(ls, answerReport{from: n.cfg.ID, term: ls.term, ago: ago})
		}
	}
	n.askTakeover(ls)
}

// askTakeover (re)sends the query to the voters that have not reported; a
// voter answers only once it has reached the leader's term.
func (n *Node) askTakeover(ls *leaderState) {
	tk := ls.takeover
	if tk == nil || !tk.bound.IsZero() {
		return
	}
	ask := message{Kind: msgLastAnswer, Index: ls.term}.encode()
	for id, reported := range tk.voters {
		if !reported && id != n.cfg.ID {
			_ = n.tr.Send(id, cluster.ChannelOwnership, ask)
		}
	}
}

// countReport adds a voter's report; with a quorum it sets the bound and
// reports true.
func (n *Node) countReport(ls *leaderState, r answerReport) bool {
	tk := ls.takeover
	if tk == nil || r.term != ls.term || !tk.bound.IsZero() {
		return false
	}
	if reported, voter := tk.voters[r.from]; !voter || reported {
		return false
	}
	tk.voters[r.from] = true
	// The age was measured on the voter's clock; on this one it lasted at
	// least (1-ε) as long, and it ended before the reply arrived.
	ago := time.Duration(float64(r.ago) * (1 - n.cfg.ClockDrift))
	tk.reports = append(tk.reports, n.cfg.Now().Add(-ago))
	if len(tk.reports) < tk.quorum {
		return false
	}
	// The quorum-th earliest: those voters form a quorum by themselves.
	slices.SortFunc(tk.reports, func(a, b time.Time) int { return a.Compare(b) })
	tk.bound = tk.reports[tk.quorum-1]
	n.cfg.Logger.Debug("raftowner: takeover bound", "term", ls.term,
		"before_election", ls.elected.Sub(tk.bound))
	return true
}

// takeoverFrom is the point after which no lease acknowledged by an earlier
// leader can still run: the earlier of the election and the takeover bound.
func (ls *leaderState) takeoverFrom() time.Time {
	if tk := ls.takeover; tk != nil && !tk.bound.IsZero() && tk.bound.Before(ls.elected) {
		return tk.bound
	}
	return ls.elected
}
