package raftowner

import (
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// leaseState is the owner side of the node lease. All readings come from
// cfg.Now on this node, so only this clock's rate matters (ε).
type leaseState struct {
	seq  uint64
	sent map[uint64]time.Time // send time of each outstanding renewal
	// cur is the latest acknowledged lease whose index this replica has
	// applied; next is a later one still waiting for the replica to catch
	// up. cur stays good until it expires even while next waits: the
	// leader promised not to reassign for ReassignDelay after acking it.
	cur, next grant
}

type grant struct {
	expiry time.Time
	index  uint64
}

func (n *Node) applied() uint64 { return n.fsm.applied.Load() }

// leaseValidLocked reports whether this node may act as owner now.
func (n *Node) leaseValidLocked() bool {
	n.promoteLocked()
	return n.cfg.Now().Before(n.lease.cur.expiry)
}

// promoteLocked makes the waiting grant current once its index is applied.
func (n *Node) promoteLocked() {
	if nx := n.lease.next; nx.index != 0 && n.applied() >= nx.index {
		if nx.expiry.After(n.lease.cur.expiry) {
			n.lease.cur = nx
		}
		n.lease.next = grant{}
	}
}

// renewLoop sends a renewal to the leader every Lease/4, and at once when
// raft reports a new leader: after a leader change the lease has usually
// run out, and the sooner the new leader acknowledges a renewal, the
// sooner this node holds again (or takes over a dead owner's resources).
func (n *Node) renewLoop() {
	t := time.NewTicker(n.cfg.Lease / 4)
	defer t.Stop()
	leaders := make(chan raft.Observation, 1)
	obs := raft.NewObserver(leaders, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	for {
		n.renew()
		select {
		case <-n.quit:
			return
		case <-t.C:
		case <-leaders:
		}
	}
}

func (n *Node) renew() {
	_, leader := n.raft.LeaderWithID()
	if leader == "" {
		return
	}
	n.mu.Lock()
	n.lease.seq++
	seq := n.lease.seq
	now := n.cfg.Now()
	n.lease.sent[seq] = now
	// Forget renewals too old to extend anything.
	for s, at := range n.lease.sent {
		if now.Sub(at) > n.cfg.Lease {
			delete(n.lease.sent, s)
		}
	}
	var flags uint8
	if !n.unhealthy {
		flags |= flagHealthy
	}
	if n.draining {
		flags |= flagDraining
	}
	n.mu.Unlock()
	m := message{Kind: msgRenew, Seq: seq, Index: n.applied(), Flags: flags}
	if cluster.NodeID(leader) == n.cfg.ID {
		n.submitRenewal(renewal{from: n.cfg.ID, msg: m})
		return
	}
	_ = n.tr.Send(cluster.NodeID(leader), cluster.ChannelOwnership, m.encode())
}

// handleAck extends the lease from the send time of the acknowledged
// renewal, which is earlier than anything the leader measured: the
// owner's view of its lease always ends first.
func (n *Node) handleAck(m message) {
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.lease.sent[m.Seq]
	if !ok || n.closed {
		return
	}
	delete(n.lease.sent, m.Seq)
	g := grant{expiry: at.Add(n.cfg.Lease), index: m.Index}
	if g.expiry.After(n.lease.next.expiry) {
		n.lease.next = g
	}
	n.evalLocked()
	n.kickEval()
}

func (n *Node) kickEval() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// evalLoop re-evaluates what this node holds when kicked and often enough
// to fire Lost promptly when the lease runs out (the timer runs on the
// real clock, cfg.Now may run at another rate, so it also polls).
func (n *Node) evalLoop() {
	t := time.NewTimer(n.cfg.Lease / 8)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case <-n.kick:
		case <-t.C:
		}
		n.mu.Lock()
		wait := n.evalLocked()
		n.mu.Unlock()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// evalLocked compares what this node holds now with what it announced and
// publishes Lost, then the given Moved events, then Acquired. It returns how
// soon to look again.
func (n *Node) evalLocked(moved ...ownership.Event) time.Duration {
	now := n.cfg.Now()
	valid := !n.closed && n.leaseValidLocked()
	held := map[string]ownership.Epoch{}
	if valid {
		n.fsm.view(func(s *state) {
			for name, r := range s.resources {
				if r.Owner == n.cfg.ID {
					held[name] = ownership.Epoch(r.Epoch)
				}
			}
		})
	}
	n.evalValid = valid
	var lost, acquired []string
	for name, e := range n.announced {
		if held[name] != e {
			lost = append(lost, name)
		}
	}
	for name := range held {
		if e, ok := n.announced[name]; !ok || held[name] != e {
			acquired = append(acquired, name)
		}
	}
	n.publishLocked(lost, acquired, held, moved)
	wait := n.cfg.Lease / 8
	if len(n.announced) > 0 {
		if left := n.lease.cur.expiry.Sub(now); left < wait {
			wait = max(left, time.Millisecond)
		}
	}
	return wait
}

// publishLocked announces the lost names (Lost, with the epoch announced),
// then moved, then the acquired names (Acquired, at held's epoch), each in
// name order, and records them in announced.
func (n *Node) publishLocked(lost, acquired []string, held map[string]ownership.Epoch, moved []ownership.Event) {
	slices.Sort(lost)
	slices.Sort(acquired)
	evs := make([]ownership.Event, 0, len(lost)+len(moved)+len(acquired))
	for _, name := range lost {
		evs = append(evs, ownership.Event{Resource: name, Kind: ownership.Lost, Claim: ownership.Claim{Node: n.cfg.ID, Epoch: n.announced[name]}})
		delete(n.announced, name)
	}
	evs = append(evs, moved...)
	for _, name := range acquired {
		n.announced[name] = held[name]
		evs = append(evs, ownership.Event{Resource: name, Kind: ownership.Acquired, Claim: ownership.Claim{Node: n.cfg.ID, Epoch: held[name]}})
	}
	n.hub.Publish(evs...)
}

// evalChangesLocked is evalLocked for an FSM entry: while the lease's
// validity is what the last evaluation saw, only the changed resources can
// be lost or acquired, so it looks at those alone. An Ensure or a member
// change (no owner change) costs nothing here, where a walk of every
// resource per entry made adding 10k tenants one by one quadratic.
func (n *Node) evalChangesLocked(changes []change, moved []ownership.Event) {
	valid := !n.closed && n.leaseValidLocked()
	if valid != n.evalValid {
		n.evalLocked(moved...)
		return
	}
	if len(changes) == 0 {
		return // an Ensure or a member change: no owner changed
	}
	var lost, acquired []string
	held := map[string]ownership.Epoch{}
	n.fsm.view(func(s *state) {
		for _, c := range changes { // one per name (an entry, or diffStates)
			name := c.Name
			var e ownership.Epoch
			if r, ok := s.resources[name]; ok && valid && r.Owner == n.cfg.ID {
				e = ownership.Epoch(r.Epoch)
			}
			was, announced := n.announced[name]
			if announced && was != e {
				lost = append(lost, name)
			}
			if e != 0 && (!announced || was != e) {
				held[name] = e
				acquired = append(acquired, name)
			}
		}
	})
	n.publishLocked(lost, acquired, held, moved)
}

// onChange is the FSM's callback: it publishes Moved for each owner change
// and re-evaluates what this node holds, in order, under n.mu, so every
// watcher sees Lost before the Moved that hands the resource on.
func (n *Node) onChange(changes []change, _ uint64) {
	n.mu.Lock()
	var moved []ownership.Event
	for _, c := range changes {
		moved = append(moved, ownership.Event{Resource: c.Name, Kind: ownership.Moved, Removed: c.Removed,
			Claim: ownership.Claim{Node: c.New, Epoch: ownership.Epoch(c.Epoch)}})
	}
	n.evalChangesLocked(changes, moved)
	n.publishMembersLocked()
	n.mu.Unlock()
	select {
	case n.leaderKck <- struct{}{}:
	default:
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func containsID(ids []cluster.NodeID, id cluster.NodeID) bool { return slices.Contains(ids, id) }
