package raftowner

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// renewal is a lease renewal waiting for the leader.
type renewal struct {
	from cluster.NodeID
	msg  message
}

// submitRenewal queues a renewal for the leader loop; a full queue drops it
// (the renewer tries again in Lease/4).
func (n *Node) submitRenewal(r renewal) {
	select {
	case n.renewCh <- r:
	default:
	}
}

// peerState is what the leader knows of one node, from the renewals it
// acknowledged during its term.
type peerState struct {
	lastAck  time.Time // when this leader last acknowledged a renewal
	since    time.Time // start of the current run of eligible renewals
	eligible bool      // the last renewal said healthy and not draining
	draining bool
	applied  uint64 // applied index the node reported
}

// leaderState lives in the leader loop only.
type leaderState struct {
	n        *Node
	term     uint64
	nonce    uint64 // of the last confirmation round
	elected  time.Time
	peers    map[cluster.NodeID]*peerState
	proposed map[string]proposal // assignments in flight
	takeover *takeover           // nil until the configuration was read
	// heard: start of the latest confirmation round each voter answered;
	// roundStart: start times of the recent rounds (see transfer.go).
	heard      map[cluster.NodeID]time.Time
	roundStart map[uint64]time.Time
	// healthProposed: when commitHealth last proposed for each member.
	healthProposed map[cluster.NodeID]time.Time
	// renewing: nodes that sent this leader a renewal (a sign of life).
	renewing map[cluster.NodeID]bool
}

type proposal struct {
	epoch uint64
	from  cluster.NodeID // the owner the proposal takes the resource from
	at    time.Time
}

// movingAway reports whether a proposal of this term takes a resource away
// from id and this leader's table does not show it applied yet. An ack
// sent meanwhile could carry an index from before that entry reached the
// log (raft.Apply appends it asynchronously), and id, having applied that
// far, would hold on under its renewed lease after the move committed: two
// holders. So id gets no ack until the move is applied here, when the entry
// is in the log and the ack's index covers it. A proposal older than a
// lease is taken as lost (reassign retries it), so a lost one does not
// starve id of acks.
func (ls *leaderState) movingAway(id cluster.NodeID, now time.Time) bool {
	pending := false
	ls.n.fsm.view(func(s *state) {
		for name, p := range ls.proposed {
			if p.from != id || now.Sub(p.at) >= ls.n.cfg.Lease {
				continue
			}
			if r, ok := s.resources[name]; ok && r.Owner == id && r.Epoch == p.epoch {
				pending = true
				return
			}
		}
	})
	return pending
}

// peer returns the record of id, creating it.
func (ls *leaderState) peer(id cluster.NodeID) *peerState {
	p := ls.peers[id]
	if p == nil {
		p = &peerState{}
		ls.peers[id] = p
	}
	return p
}

func (ls *leaderState) eligible(id cluster.NodeID) bool {
	p := ls.peers[id]
	return p != nil && p.eligible && ls.n.cfg.Now().Sub(p.lastAck) < ls.n.cfg.Lease
}

func (ls *leaderState) eligibleSince(id cluster.NodeID) time.Time {
	if p := ls.peers[id]; p != nil {
		return p.since
	}
	return ls.n.cfg.Now()
}

// dead reports whether id's lease has surely run out: ReassignDelay has
// passed since the later of this leader's takeover point (its election, or
// the earlier takeover bound, see takeover.go), which covers every earlier
// leader's acknowledgements, and its own last acknowledgement to id.
func (ls *leaderState) dead(id cluster.NodeID) bool {
	return ls.silentSince(id, ls.takeoverFrom())
}

// failed reports whether id should be treated as failed: its lease has
// surely run out (dead) and, if it showed this leader a sign of life in
// this term (it sent a renewal, or answered a confirmation round or the
// takeover query), it has also been silent for ReassignDelay since the election. Right after
// an election every node's lease may have lapsed while nobody could
// renew; the takeover point makes them all dead at once, but the live ones
// renew within moments, and moving their resources meanwhile would only
// churn epochs. failed implies dead, so safety is dead's.
func (ls *leaderState) failed(id cluster.NodeID) bool {
	if !ls.dead(id) {
		return false
	}
	_, heard := ls.heard[id]
	if tk := ls.takeover; (tk != nil && tk.voters[id]) || ls.renewing[id] {
		heard = true
	}
	return !heard || ls.silentSince(id, ls.elected)
}

// silentSince reports whether ReassignDelay has passed since the later of
// from and this leader's last acknowledgement to id.
func (ls *leaderState) silentSince(id cluster.NodeID, from time.Time) bool {
	if p := ls.peers[id]; p != nil && p.lastAck.After(from) {
		from = p.lastAck
	}
	return ls.n.cfg.Now().Sub(from) >= ls.n.cfg.ReassignDelay
}

// alive: acknowledged within one lease.
func (ls *leaderState) alive(id cluster.NodeID) bool {
	p := ls.peers[id]
	return p != nil && ls.n.cfg.Now().Sub(p.lastAck) < ls.n.cfg.Lease
}

// betterUnknown reports whether a candidate ranked above to has neither
// renewed with this leader nor been silent for ReassignDelay: right after an
// election the leader has not heard everyone yet, and an unowned resource,
// or a failed owner's, should wait briefly for the better candidate rather
// than land on a worse one (sticky would keep it there). The failed owner
// itself is passed over. The listed candidates count even before they
// registered as members.
func (ls *leaderState) betterUnknown(s *state, r *resource, to cluster.NodeID) bool {
	cands := r.Candidates
	if len(cands) == 0 {
		cands = s.ownerCandidates(r)
	}
	for _, c := range cands {
		if c == to {
			return false
		}
		if c == r.Owner {
			continue // the failed owner, when a failed owner's resource moves
		}
		if m, ok := s.members[c]; ok && m.Role == RoleArbiter {
			continue
		}
		// Patience counts from the election, not the earlier takeover
		// point: a node that has not renewed with this leader yet is
		// waited for as long as before (nothing here is about safety).
		if !ls.alive(c) && !ls.silentSince(c, ls.elected) {
			return true
		}
	}
	return false
}

func (n *Node) newLeaderState() *leaderState {
	return &leaderState{n: n, term: n.raft.CurrentTerm(), elected: n.cfg.Now(), nonce: rand.Uint64(),
		peers: map[cluster.NodeID]*peerState{}, proposed: map[string]proposal{},
		heard: map[cluster.NodeID]time.Time{}, roundStart: map[uint64]time.Time{},
		healthProposed: map[cluster.NodeID]time.Time{}, renewing: map[cluster.NodeID]bool{}}
}

// sameTerm drops leader state from an earlier term. Raft's LeaderCh keeps
// only the latest value, so a lost-and-regained leadership can arrive as a
// single "true"; the term tells. A new term's state starts its clock now,
// which is after that term's election, as dead() requires.
func (n *Node) sameTerm(ls *leaderState) *leaderState {
	if ls == nil || n.raft.CurrentTerm() == ls.term {
		return ls
	}
	if n.raft.State() == raft.Leader {
		return n.newLeaderState()
	}
	return nil
}

// leaderLoop follows raft leadership. While leader it acknowledges lease
// renewals, after a confirmation round, and reassigns resources.
func (n *Node) leaderLoop() {
	leaderCh := n.raft.LeaderCh()
	var ls *leaderState
	var batch []renewal
	var cr *confirmRound
	roundTimer := time.NewTimer(time.Hour)
	roundTimer.Stop()
	defer roundTimer.Stop()
	// Reassignment is checked every Lease/8: a dead owner's resources move
	// at most that long after ReassignDelay has passed.
	tick := time.NewTicker(n.cfg.Lease / 8)
	defer tick.Stop()

	// next starts a confirmation round for the renewals waiting, unless one
	// runs; a round that needs no other voter completes at once.
	var next func()
	next = func() {
		if cr != nil || len(batch) == 0 || ls == nil {
			return
		}
		cr = n.startRound(ls, batch)
		batch = nil
		if cr == nil {
			return
		}
		if cr.done() {
			n.ackBatch(ls, cr.batch)
			cr = nil
			next()
			return
		}
		roundTimer.Reset(n.cfg.Lease)
	}
	for {
		select {
		case <-n.quit:
			return
		case isLeader := <-leaderCh:
			ls, cr, batch = nil, nil, nil
			if isLeader {
				ls = n.newLeaderState()
				n.startTakeover(ls)
			}
		case reply := <-n.transferCh:
			if ls = n.sameTerm(ls); ls == nil {
				reply <- ErrNotLeader
				continue
			}
			n.startTransfer(ls, true, func(err error) { reply <- err })
		case r := <-n.reportCh:
			if ls = n.sameTerm(ls); ls != nil && n.countReport(ls, r) {
				n.reassign(ls)
			}
		case r := <-n.renewCh:
			if ls = n.sameTerm(ls); ls == nil {
				cr, batch = nil, nil
				continue
			}
			ls.renewing[r.from] = true
			// The applied index a node reports is a fact whether or not
			// the confirmation round that would ack it succeeds: record it
			// now. A draining node's last renewal reports its releases, and
			// it may close before any round completes (see reportReleases).
			p := ls.peer(r.from)
			p.applied = max(p.applied, r.msg.Index)
			batch = append(batch, r)
			next()
		case c := <-n.confirmCh:
			if ls != nil && c.term == ls.term {
				ls.heardFrom(c.from, c.nonce)
			}
			if cr == nil || !cr.count(c) {
				continue
			}
			roundTimer.Stop()
			if ls = n.sameTerm(ls); ls != nil && ls.term == cr.term {
				n.ackBatch(ls, cr.batch)
			}
			cr = nil
			next()
		case <-roundTimer.C:
			cr = nil // not confirmed in time: the renewers retry
			next()
		case <-tick.C:
			if ls = n.sameTerm(ls); ls != nil {
				if ls.takeover == nil {
					n.startTakeover(ls)
				}
				n.askTakeover(ls)
				n.reassign(ls)
				n.commitHealth(ls)
				n.maybeYield(ls)
			}
		case <-n.leaderKck:
			names, all := n.touched.take()
			if ls = n.sameTerm(ls); ls != nil {
				if all {
					n.reassign(ls)
				} else {
					n.reassignNames(ls, names)
				}
			}
		}
	}
}

// ackBatch acknowledges verified renewals. The index each ack carries is the
// leader's last log index: the renewer counts the lease only after applying
// that far, so it sees every owner change committed before the ack.
func (n *Node) ackBatch(ls *leaderState, batch []renewal) {
	now := n.cfg.Now()
	index := n.ackIndex()
	changed := false
	for _, r := range batch {
		p := ls.peer(r.from)
		if ls.movingAway(r.from, now) {
			continue // no ack yet (the renewer retries in Lease/4); see movingAway
		}
		elig := r.msg.Flags&flagHealthy != 0 && r.msg.Flags&flagDraining == 0
		if elig && (!p.eligible || now.Sub(p.lastAck) >= n.cfg.Lease) {
			p.since = now
		}
		changed = changed || elig != p.eligible || p.draining != (r.msg.Flags&flagDraining != 0)
		p.eligible, p.draining = elig, r.msg.Flags&flagDraining != 0
		p.lastAck = now
		ack := message{Kind: msgAck, Seq: r.msg.Seq, Index: index}
		if r.from == n.cfg.ID {
			n.handleAck(ack)
			continue
		}
		_ = n.tr.Send(r.from, cluster.ChannelOwnership, ack.encode())
	}
	if changed {
		n.reassign(ls)
	}
}

// ackIndex is the index of the last command in the leader's log. Every
// committed command is in a leader's log (Raft's leader completeness), so a
// renewer that has applied this far has seen every committed owner change.
// No-op and configuration entries never reach the FSM and are skipped, or
// a renewer's applied index could never reach a trailing no-op.
func (n *Node) ackIndex() uint64 {
	first, err := n.logs.FirstIndex()
	if err != nil {
		return n.raft.LastIndex()
	}
	for idx := n.raft.LastIndex(); idx >= first && idx > 0; idx-- {
		var l raft.Log
		if err := n.logs.GetLog(idx, &l); err != nil {
			break
		}
		if l.Type == raft.LogCommand {
			return idx
		}
	}
	// Everything before the log's first entry is in a snapshot, which only
	// holds what this node's FSM applied.
	return n.fsm.applied.Load()
}

// reassign proposes the owner changes the policies call for, walking every
// resource (each tick, and after a change of membership, weights or
// health). Every proposal is a compare-and-set on (owner, epoch), so a
// stale decision commits as a no-op.
func (n *Node) reassign(ls *leaderState) {
	now := n.cfg.Now()
	var cmds []command
	n.fsm.view(func(s *state) {
		// Map order: each resource's decision stands alone, and sorting
		// 10k names every tick cost half the walk; the proposals are
		// sorted below instead.
		for _, r := range s.resources {
			cmds = n.decide(ls, s, r, now, cmds)
		}
	})
	n.propose(cmds)
}

// reassignNames is reassign for the resources that committed entries were
// about, between ticks: an Ensure, an Assign or a Remove changes only its
// own resource's decision, so a busy table (10k tenants added one by one)
// costs the leader O(changes) per entry, not a walk of every resource.
func (n *Node) reassignNames(ls *leaderState, names []string) {
	now := n.cfg.Now()
	var cmds []command
	n.fsm.view(func(s *state) {
		for _, name := range names {
			if r, ok := s.resources[name]; ok {
				cmds = n.decide(ls, s, r, now, cmds)
			}
		}
	})
	n.propose(cmds)
}

// decide appends the owner change r's policy calls for, if any, to cmds.
func (n *Node) decide(ls *leaderState, s *state, r *resource, now time.Time, cmds []command) []command {
	if p, ok := ls.proposed[r.Name]; ok && p.epoch == r.Epoch && now.Sub(p.at) < n.cfg.Lease {
		return cmds
	}
	to := desired(s, r, ls, now, n.cfg.HoldDown)
	var c *command
	switch {
	case r.Owner == "":
		if r.ReleasedBy != "" && !ls.dead(r.ReleasedBy) {
			if p := ls.peers[r.ReleasedBy]; p == nil || p.applied < r.ReleaseIndex {
				return cmds // the old owner may still be acting
			}
		}
		if to != "" && !ls.betterUnknown(s, r, to) {
			c = &command{Kind: cmdAssign, Name: r.Name, FromEpoch: r.Epoch, To: to}
		}
	case ls.failed(r.Owner):
		// A better-ranked candidate that has not renewed with this
		// leader yet (right after an election, everyone) is waited
		// for, as for a new resource: else the leader's own
		// immediate ack would win it the resource. With no
		// eligible candidate yet, the same wait keeps it from
		// being released to nobody first.
		if to != r.Owner && !ls.betterUnknown(s, r, to) {
			c = &command{Kind: cmdAssign, Name: r.Name, From: r.Owner, FromEpoch: r.Epoch, To: to}
		}
	case to != r.Owner && ls.alive(r.Owner) && (to != "" || ls.peers[r.Owner].draining):
		// A live owner gives the resource up first; the new owner
		// gets it once the old one has applied the release.
		c = &command{Kind: cmdAssign, Name: r.Name, From: r.Owner, FromEpoch: r.Epoch}
	}
	if c == nil {
		return cmds
	}
	ls.proposed[r.Name] = proposal{epoch: r.Epoch, from: r.Owner, at: now}
	return append(cmds, *c)
}

// propose submits cmds in name order.
func (n *Node) propose(cmds []command) {
	slices.SortFunc(cmds, func(a, b command) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range cmds {
		// Not waited for: the FSM callback kicks the next round, and a
		// failed proposal is retried after a lease.
		n.raft.Apply(c.encode(), n.cfg.Lease)
	}
}

// touchSet collects what committed entries were about, from the FSM
// goroutine, for the leader's next reassignNames. Past touchLimit names it
// asks for a full walk instead, which also bounds it on a follower, where
// nothing takes it until the node leads (and a new leader walks everything
// at its first tick anyway).
type touchSet struct {
	mu    sync.Mutex
	names map[string]struct{}
	all   bool
}

const touchLimit = 4096

func (t *touchSet) add(name string, all bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if all || t.all || len(t.names) >= touchLimit {
		t.all, t.names = true, nil
		return
	}
	if t.names == nil {
		t.names = map[string]struct{}{}
	}
	t.names[name] = struct{}{}
}

// take empties the set: the names, or all when a full walk is due.
func (t *touchSet) take() (names []string, all bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	all = t.all
	if !all {
		names = make([]string, 0, len(t.names))
		for name := range t.names {
			names = append(names, name)
		}
	}
	t.names, t.all = nil, false
	return names, all
}
