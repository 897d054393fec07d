package raftowner

import (
	"slices"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// liveness is the leader's view of the nodes, built from the lease renewals
// it acknowledged.
type liveness interface {
	// eligible: the node renewed its lease recently and reports itself
	// healthy and not draining, so it may be given resources.
	eligible(id cluster.NodeID) bool
	// eligibleSince: when the node last became eligible.
	eligibleSince(id cluster.NodeID) time.Time
}

// desired picks the node that should own r now under its policy, or "" when
// no candidate is eligible.
func desired(s *state, r *resource, lv liveness, now time.Time, defaultHold time.Duration) cluster.NodeID {
	var buf [8]cluster.NodeID
	cands := s.appendOwnerCandidates(buf[:0], r)
	ownerOK := r.Owner != "" && lv.eligible(r.Owner) && slices.Contains(cands, r.Owner)
	switch r.Policy {
	case ownership.Preferred, ownership.Placed:
		hold := r.HoldDown
		if hold == 0 {
			hold = defaultHold
		}
		// The best-ranked candidate that either owns it already or has been
		// eligible for the hold-down, so a flapping primary does not pull
		// the resource back and forth.
		for _, c := range cands {
			if c == r.Owner && ownerOK {
				return c
			}
			if lv.eligible(c) && now.Sub(lv.eligibleSince(c)) >= hold {
				return c
			}
		}
	}
	if ownerOK {
		return r.Owner
	}
	for _, c := range cands {
		if lv.eligible(c) {
			return c
		}
	}
	return ""
}
