package partition

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/sipha/sipha/cluster"
)

// Sentinel errors of the partition package.
var (
	ErrBadMembers = errors.New("partition: invalid membership")
	ErrBadConfig  = errors.New("partition: invalid config")
	ErrBadKey     = errors.New("partition: invalid key")
	ErrUnknownKey = errors.New("partition: unknown key")
	ErrNoOwner    = errors.New("partition: no committed owner")
	ErrNotHeld    = errors.New("partition: committed to this node but not held")
	ErrNoAddr     = errors.New("partition: no SIP address for owner")
	ErrNoAnswer   = errors.New("partition: owner did not answer")
	ErrClosed     = errors.New("partition: closed")
	ErrBadRoute   = errors.New("partition: unusable Route header")
	ErrNotOnRoute = errors.New("partition: not on the dialog's route")
)

// MaxMembers bounds the membership a placement accepts; a node index must
// fit the uint16 of the precomputed rank table.
const MaxMembers = 1 << 15

// Role is what a member does in placement.
type Role uint8

const (
	// Active members own keys.
	Active Role = iota
	// Spare members own nothing until an active member fails; they then
	// take that member's keys before any other active member does (the N+1
	// spare of a partitioned FreeSWITCH farm).
	Spare
)

func (r Role) String() string {
	switch r {
	case Active:
		return "active"
	case Spare:
		return "spare"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Member is one node of the committed membership, as placement sees it.
type Member struct {
	ID   cluster.NodeID
	Role Role
	// Weight scales an active member's share of the keys: a member of
	// weight 2 gets twice the keys of one of weight 1. Zero means 1.
	Weight float64
	// Down marks a member the ownership layer has committed as failed: it
	// keeps its place in every ranking (so nothing else moves), but
	// [Placement.Owner] passes over it to the next candidate.
	Down bool
}

func (m Member) weight() float64 {
	if m.Weight == 0 {
		return 1
	}
	return m.Weight
}

// validateMembers checks a membership: non-empty unique IDs, known roles,
// finite non-negative weights.
func validateMembers(ms []Member) error {
	if len(ms) > MaxMembers {
		return fmt.Errorf("%w: %d members, at most %d", ErrBadMembers, len(ms), MaxMembers)
	}
	seen := make(map[cluster.NodeID]bool, len(ms))
	for _, m := range ms {
		switch {
		case m.ID == "":
			return fmt.Errorf("%w: empty member ID", ErrBadMembers)
		case seen[m.ID]:
			return fmt.Errorf("%w: member %q listed twice", ErrBadMembers, m.ID)
		case m.Role > Spare:
			return fmt.Errorf("%w: member %q has unknown %v", ErrBadMembers, m.ID, m.Role)
		case m.Weight < 0 || math.IsNaN(m.Weight) || math.IsInf(m.Weight, 0):
			return fmt.Errorf("%w: member %q weight %v", ErrBadMembers, m.ID, m.Weight)
		}
		seen[m.ID] = true
	}
	return nil
}

// Options tune a placement. The zero value is plain weighted rendezvous
// hashing.
type Options struct {
	// LoadFactor c ≥ 1 turns on bounded loads over the committed key set:
	// no active member owns more than c × its weight share of those keys
	// (or its share rounded up, when that is more). Zero turns it off.
	// With it on, a membership or key-set change can also move keys
	// between members the change did not touch: a key bumped from a full
	// member takes a place another key had.
	LoadFactor float64
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.LoadFactor != 0 && (o.LoadFactor < 1 || math.IsNaN(o.LoadFactor) || math.IsInf(o.LoadFactor, 0)) {
		return fmt.Errorf("%w: LoadFactor %v must be 0 or ≥ 1", ErrBadConfig, o.LoadFactor)
	}
	return nil
}
