package raftowner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// errNoTarget: no other voter is both reachable and up to date now.
var errNoTarget = errors.New("raftowner: no reachable, up-to-date voter to hand leadership to")

// Leadership is handed on in two cases: an arbiter that won an election
// yields to a SIP node, and a leader that shuts down hands over before it
// stops. hashicorp/raft's LeadershipTransfer picks the target by the highest
// next index alone, the first in configuration order on a tie, so a
// follower cut off a moment ago still wins the tie; the transfer then waits
// an election timeout for an answer that cannot come, blocking every Apply
// (reassignments included) meanwhile, and an arbiter retrying it picks the
// same node again while no entry breaks the tie. So the leader picks the
// target itself, from what it saw in the last heartbeat timeout, and uses
// LeadershipTransferToServer:
//
//   - the voter answered a confirmation round that started within the last
//     HeartbeatTimeout (both directions work now);
//   - a node that renews (not an arbiter) renewed within a lease and had
//     applied the leader's whole applied log, so it can act as leader at
//     once, without catching up first;
//   - among those: SIP nodes before arbiters, then the node that owns the
//     fewest resources (its later death then moves the fewest resources
//     with a leader election on top), then by ID.

// roundStartsKept bounds how many confirmation rounds' start times the
// leader remembers to date late answers.
const roundStartsKept = 16

// heardFrom records that id answered the round with nonce, which proves a
// round trip after that round started.
func (ls *leaderState) heardFrom(id cluster.NodeID, nonce uint64) {
	at, ok := ls.roundStart[nonce]
	if !ok {
		return
	}
	if at.After(ls.heard[id]) {
		ls.heard[id] = at
	}
}

func (ls *leaderState) roundStarted(nonce uint64, at time.Time) {
	ls.roundStart[nonce] = at
	delete(ls.roundStart, nonce-roundStartsKept)
}

// transferTarget picks the voter to hand leadership to, or false.
func (n *Node) transferTarget(ls *leaderState, arbiterOK bool) (raft.Server, bool) {
	f := n.raft.GetConfiguration()
	if n.await(f) != nil {
		return raft.Server{}, false
	}
	now := n.cfg.Now()
	applied := n.applied()
	type cand struct {
		srv  raft.Server
		arb  bool
		owns int
	}
	var best *cand
	better := func(a, b cand) bool {
		if a.arb != b.arb {
			return !a.arb
		}
		if a.owns != b.owns {
			return a.owns < b.owns
		}
		return a.srv.ID < b.srv.ID
	}
	n.fsm.view(func(s *state) {
		owns := map[cluster.NodeID]int{}
		for _, r := range s.resources {
			owns[r.Owner]++
		}
		for _, srv := range f.Configuration().Servers {
			id := cluster.NodeID(srv.ID)
			if srv.Suffrage != raft.Voter || id == n.cfg.ID {
				continue
			}
			if h, ok := ls.heard[id]; !ok || now.Sub(h) > n.cfg.HeartbeatTimeout {
				continue
			}
			arb := s.members[id].Role == RoleArbiter
			if arb && !arbiterOK {
				continue
			}
			if p := ls.peers[id]; !arb && (p == nil || !ls.alive(id) || p.applied < applied) {
				continue
			}
			c := cand{srv: srv, arb: arb, owns: owns[id]}
			if best == nil || better(c, *best) {
				best = &c
			}
		}
	})
	if best == nil {
		return raft.Server{}, false
	}
	return best.srv, true
}

// startTransfer hands leadership to a target picked now and calls done
// (when not nil) with the outcome. At most one transfer runs at a time.
func (n *Node) startTransfer(ls *leaderState, arbiterOK bool, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	if n.transferring.Load() {
		done(raft.ErrLeadershipTransferInProgress)
		return
	}
	srv, ok := n.transferTarget(ls, arbiterOK)
	if !ok {
		done(errNoTarget)
		return
	}
	n.transferring.Store(true)
	n.goFunc(func() {
		err := n.await(n.raft.LeadershipTransferToServer(srv.ID, srv.Address))
		n.transferring.Store(false)
		n.transfers.Add(1)
		if err != nil {
			n.transferFailures.Add(1)
			err = fmt.Errorf("raftowner: hand leadership to %s: %w", srv.ID, err)
		} else {
			n.cfg.Logger.Info("raftowner: handed leadership on", "to", srv.ID)
		}
		done(err)
	})
}

// maybeYield hands an arbiter's leadership to a SIP node once it has
// settled: a heartbeat timeout after its election, and not while a dead
// owner's resources wait for their reassignment delay (a new leader would
// start that wait over), unless that wait is surely over.
func (n *Node) maybeYield(ls *leaderState) {
	if n.cfg.Role != RoleArbiter || n.transferring.Load() {
		return
	}
	now := n.cfg.Now()
	if now.Sub(ls.elected) < n.cfg.HeartbeatTimeout {
		return
	}
	if now.Sub(ls.takeoverFrom()) < n.cfg.ReassignDelay+n.cfg.Lease {
		pending := false
		n.fsm.view(func(s *state) {
			for _, r := range s.resources {
				pending = pending || (r.Owner != "" && !ls.alive(r.Owner))
			}
		})
		if pending {
			return
		}
	}
	n.startTransfer(ls, false, func(err error) {
		if err != nil {
			n.cfg.Logger.Debug("raftowner: arbiter could not hand leadership on", "err", err)
		}
	})
}

// transferLeadership asks the leader loop to hand leadership on, retrying
// while no target qualifies, for at most a few lease renewals.
func (n *Node) transferLeadership(ctx context.Context) error {
	var err error
	for try := 0; try < 8; try++ {
		reply := make(chan error, 1)
		select {
		case n.transferCh <- reply:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.quit:
			return errClosed
		}
		select {
		case err = <-reply:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.quit:
			return errClosed
		}
		if !errors.Is(err, errNoTarget) && !errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return err
		}
		select {
		case <-time.After(n.cfg.Lease / 4):
		case <-ctx.Done():
			return ctx.Err()
		case <-n.quit:
			return errClosed
		}
	}
	return err
}
