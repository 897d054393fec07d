package raftowner_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
)

// reverse places a resource on the member with the largest ID first: a
// stand-in for partition's rendezvous hash that makes the expected owner
// obvious.
func reverse(_ string, members []cluster.NodeID) []cluster.NodeID {
	out := slices.Clone(members)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// The placement function decides the candidates and is re-run when the
// membership changes: a node that joins and ranks first takes the resource
// after the hold-down.
func TestPlacedFollowsMembership(t *testing.T) {
	clustertest.CheckLeaks(t)
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: three,
		Tune: func(cfg *raftowner.Config) { cfg.HoldDown = 300 * time.Millisecond }})
	c.Ensure(ownership.Spec{Name: "tenant/acme", Policy: ownership.Placed, Place: reverse})
	_, e1 := c.WaitHolder("tenant/acme", wait, func(id cluster.NodeID) bool { return id == "n3" })
	c.Add("n4", raftowner.RoleNode, "n1")
	_, e2 := c.WaitHolder("tenant/acme", wait, func(id cluster.NodeID) bool { return id == "n4" })
	if e2 <= e1 {
		t.Fatalf("epoch did not grow: %d then %d", e1, e2)
	}
	c.Kill("n4")
	c.WaitHolder("tenant/acme", wait, func(id cluster.NodeID) bool { return id == "n3" })
}

// Spares own nothing until a listed candidate fails.
func TestSpareTakesOverLast(t *testing.T) {
	clustertest.CheckLeaks(t)
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: three,
		Roles: map[cluster.NodeID]raftowner.Role{"n3": raftowner.RoleSpare}})
	c.Ensure(ownership.Spec{Name: "node/n1", Candidates: []cluster.NodeID{"n1"}})
	c.WaitHolder("node/n1", wait, func(id cluster.NodeID) bool { return id == "n1" })
	c.Kill("n1")
	c.WaitHolder("node/n1", wait, func(id cluster.NodeID) bool { return id == "n3" })
}
