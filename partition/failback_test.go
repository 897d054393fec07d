package partition_test

import (
	"context"
	"slices"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/partition"
)

// With FailbackSticky a failed node's tenants stay on the spare after the
// node returns. The control is a second key kind ("conf/", the same keys,
// so the same placement) with the default FailbackPreferred: once its keys
// are back on the returned node, the hold-down has passed and the node is
// eligible, so the sticky tenants could have moved and did not: same
// owner, same epoch, and the returned node's watcher reports no gain.
func TestFailbackSticky(t *testing.T) {
	clustertest.CheckLeaks(t)
	f := newFarm(t, partition.Config{Failback: partition.FailbackSticky}, nil, []cluster.NodeID{"n1", "n2", "n3", "s1"}, "s1")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	keys := tenants(12)
	// Sticky candidates are computed at Add: wait for the whole membership.
	ownershiptest.WaitFor(t, wait, "n1 to see the whole membership", func() bool {
		pl, err := f.part("n1").Placement()
		return err == nil && len(pl.Members()) == 4
	})
	pl, before := f.settle(keys)

	conf, err := partition.New(f.c.Node("n1"), nil, partition.Config{Kind: "conf"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conf.Close() }) // before the farm stops n1
	for _, k := range keys {
		if err := conf.Add(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	confRes := func(k string) string { return conf.Resource(k) }
	for _, k := range keys {
		f.c.WaitHolder(confRes(k), wait, func(id cluster.NodeID) bool { o, _ := pl.Owner(k); return id == o })
	}

	victim := cluster.NodeID("n2")
	var victims []string
	for _, k := range keys {
		if before[k].Node == victim {
			victims = append(victims, k)
		}
	}
	if len(victims) == 0 {
		t.Fatalf("placement %v: %s owns nothing", before, victim)
	}
	spare, stopWatch := record(f.part("s1"))
	defer stopWatch()
	f.stop(victim)
	during := map[string]ownership.Claim{}
	for _, k := range victims {
		id, e := f.c.WaitHolder(ownership.TenantResource(k), wait, func(id cluster.NodeID) bool { return id == "s1" })
		during[k] = ownership.Claim{Node: id, Epoch: e}
		f.c.WaitHolder(confRes(k), wait, func(id cluster.NodeID) bool { return id == "s1" })
	}

	back, stopBack := record(f.start(victim, true))
	defer stopBack()
	for _, k := range victims {
		f.c.WaitHolder(confRes(k), wait, func(id cluster.NodeID) bool { return id == victim })
	}
	for _, k := range victims {
		if c, ok := f.part("n1").Owner(k); !ok || c != during[k] {
			t.Errorf("sticky %s: committed %v after %s returned, want it kept at %v", k, c, victim, during[k])
		}
		// Waited for: a lease that lapses for a moment leaves the claim.
		if id, e := f.c.WaitHolder(ownership.TenantResource(k), wait, nil); id != "s1" || e != during[k].Epoch {
			t.Errorf("sticky %s: held by %s at epoch %d, want the spare at %d", k, id, e, during[k].Epoch)
		}
	}
	// The spare's lease may lapse for a moment on a loaded host (Lost,
	// then Acquired at the same epoch); the epochs above show no move.
	if g, _, bad := spare.snapshot(); !slices.Equal(g, victims) || bad != "" {
		t.Fatalf("spare gained %v, want %v; %s", g, victims, bad)
	}
	if g, _, bad := back.snapshot(); len(g) != 0 || bad != "" {
		t.Fatalf("returned %s gained %v, want none; %s", victim, g, bad)
	}
}
