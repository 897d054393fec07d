package raftowner_test

import (
	"context"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
)

// Two of three nodes die for good. The survivor has no quorum, so nothing
// moves (a minority must never reassign). The operator recovers it as a
// one-node cluster; it takes the dead nodes' resources; a replacement node
// joins with an empty data directory and takes a resource.
func TestQuorumLossRecoverAndReplace(t *testing.T) {
	clustertest.CheckLeaks(t)
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: three})
	c.Ensure(ownership.Spec{Name: "vip/q", Candidates: []cluster.NodeID{"n2", "n1"}})
	c.WaitHolder("vip/q", wait, func(id cluster.NodeID) bool { return id == "n2" })
	c.Kill("n2")
	c.Kill("n3")
	time.Sleep(3 * c.Node("n1").Config().ReassignDelay)
	if id, _, n := c.Holder("vip/q"); n != 0 {
		t.Fatalf("%s holds vip/q without a quorum", id)
	}

	c.Kill("n1")
	if err := c.Recover("n1", "n1"); err != nil {
		t.Fatal(err)
	}
	c.Start("n1")
	c.WaitHolder("vip/q", wait, func(id cluster.NodeID) bool { return id == "n1" })

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n1 := c.Node("n1")
	for _, dead := range []cluster.NodeID{"n2", "n3"} {
		if err := n1.Leave(ctx, dead); err != nil {
			t.Fatalf("leave %s: %v", dead, err)
		}
	}
	c.Add("n4", raftowner.RoleNode, "n1")
	ownershiptest.WaitFor(t, wait, "n4 to join", func() bool { n := c.Node("n4"); return n != nil && n.Ready() })
	c.Ensure(ownership.Spec{Name: "vip/r", Candidates: []cluster.NodeID{"n4", "n1"}})
	c.WaitHolder("vip/r", wait, func(id cluster.NodeID) bool { return id == "n4" })
	var ids []cluster.NodeID
	for _, m := range n1.Members() {
		ids = append(ids, m.ID)
	}
	if len(ids) != 2 || ids[0] != "n1" || ids[1] != "n4" {
		t.Fatalf("members after replacement: %v, want [n1 n4]", ids)
	}
}

func TestRecoverRefusesEmptyState(t *testing.T) {
	err := raftowner.Recover(raftowner.Config{ID: "n1", Addr: "n1:7946", DataDir: t.TempDir()},
		[]raftowner.Peer{{ID: "n1", Addr: "n1:7946"}})
	if err == nil {
		t.Fatal("Recover of an empty data dir succeeded")
	}
	if err := raftowner.Recover(raftowner.Config{ID: "n1"}, nil); err == nil {
		t.Fatal("Recover without DataDir succeeded")
	}
}
