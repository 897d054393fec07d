package ownership

import (
	"strconv"

	"github.com/sipha/sipha/cluster"
)

// Role is what a member node does for ownership.
type Role uint8

const (
	// RoleNode is a full member: a Raft voter that may own resources.
	RoleNode Role = iota
	// RoleSpare owns a resource only when none of its listed candidates
	// can: spares follow every candidate list (N+1 / N+M spares). A Raft
	// non-voter.
	RoleSpare
	// RoleArbiter votes and owns nothing (the third voter of a pair).
	RoleArbiter
)

func (r Role) String() string {
	switch r {
	case RoleNode:
		return "node"
	case RoleSpare:
		return "spare"
	case RoleArbiter:
		return "arbiter"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Member is one node of the committed membership.
type Member struct {
	ID cluster.NodeID
	// Addr is the node's cluster address as it registered it.
	Addr string
	Role Role
	// Weight is the node's share of placed resources relative to a node
	// of weight 1 (a node of weight 2 should get twice as many). It is
	// what the node was configured with; 1 when it set none.
	Weight float64
	// Healthy is the ownership layer's committed verdict: the node renews
	// its lease and reports itself healthy and not draining. It turns
	// false once the node has been silent for the reassignment delay (its
	// resources may move) or reports itself unhealthy or draining.
	Healthy bool
}

// MemberLister is an optional ability of a [Manager], found by type
// assertion: the committed membership, as every node agrees on it, for
// blocks that place work by function of the members (partition) and must
// all compute the same answer.
//
//	if ml, ok := m.(ownership.MemberLister); ok { ... }
type MemberLister interface {
	// Members returns the membership this node has applied, sorted by ID.
	// It never blocks on the network and is safe for concurrent use.
	Members() []Member
	// WatchMembers calls fn with the membership, first as it is now, then
	// after every committed change of it (a node joined or left, changed
	// role or weight, turned healthy or unhealthy).
	//
	// Concurrency: as [Manager.Watch]: one goroutine per watcher, never
	// concurrently with itself, in commit order; fn owns the slice. stop
	// removes the watcher and waits for a running fn; do not call it from
	// inside fn.
	WatchMembers(fn func([]Member)) (stop func())
}
