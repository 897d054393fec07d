package partition_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
)

// Sticky tenants follow the membership on a 3-node farm (real raftowner
// over clustertest's network):
//
//  1. n4 joins after the tenants were placed: every tenant's committed
//     candidates become its ranking over the four nodes, and no tenant
//     moves (same owner, same epoch) although n4 now ranks first for
//     some of them.
//  2. An owner dies: each of its tenants goes to the next node of its new
//     ranking, n4 for some of them, and no other tenant moves.
//  3. The dead node is removed: it leaves every candidate list, and still
//     no tenant moves.
//
// With ManualReplace set (the behaviour before) step 1 times out: n4 is in
// no list.
func TestStickyFollowsMembership(t *testing.T) {
	clustertest.CheckLeaks(t)
	cfg := partition.Config{Failback: partition.FailbackSticky, ReplaceDelay: 200 * time.Millisecond}
	f := newFarm(t, cfg, nil, []cluster.NodeID{"n1", "n2", "n3"})
	keys := tenants(30)
	ownershiptest.WaitFor(t, wait, "n1 to see the whole membership", func() bool {
		pl, err := f.part("n1").Placement()
		return err == nil && len(pl.Members()) == 3
	})
	_, before := f.settle(keys)

	f.c.Add("n4", raftowner.RoleNode, "n1")
	t.Cleanup(func() { f.stop("n4") }) // before the farm's cleanup
	ownershiptest.WaitFor(t, wait, "n4 ready", func() bool { return f.c.Node("n4").Ready() })
	f.start("n4", false)
	rank4 := f.waitLists(t, "n1", keys, 4)
	f.sameClaims(t, "n4 joined", keys, before, nil)

	// The victim among n2 and n3 whose tenants n4 stands first for most.
	next := func(k string, dead cluster.NodeID) cluster.NodeID {
		i := slices.IndexFunc(rank4[k], func(id cluster.NodeID) bool { return id != dead })
		return rank4[k][i]
	}
	var victim cluster.NodeID
	best := 0
	for _, v := range []cluster.NodeID{"n2", "n3"} {
		n := 0
		for _, k := range keys {
			if before[k].Node == v && next(k, v) == "n4" {
				n++
			}
		}
		if n > best {
			victim, best = v, n
		}
	}
	if best == 0 {
		t.Fatalf("n4 is the next candidate of no tenant of n2 or n3: %v", rank4)
	}
	t.Logf("killing %s; n4 is next for %d of its tenants", victim, best)
	f.stop(victim)
	during := f.holders(keys, func(k string, id cluster.NodeID) bool {
		if before[k].Node == victim {
			return id == next(k, victim)
		}
		return id == before[k].Node
	})
	f.sameClaims(t, string(victim)+" died", keys, before, func(k string) bool { return before[k].Node == victim })
	toN4 := 0
	for _, k := range keys {
		if before[k].Node == victim && during[k].Node == "n4" {
			toN4++
		}
	}
	if toN4 != best {
		t.Fatalf("n4 took %d of %s's tenants, want %d", toN4, victim, best)
	}

	survivor := cluster.NodeID("n1")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := f.c.Node(survivor).Leave(ctx, victim); err != nil {
		t.Fatal(err)
	}
	rank3 := f.waitLists(t, survivor, keys, 3)
	for _, k := range keys {
		if slices.Contains(rank3[k], victim) {
			t.Fatalf("%s: candidates %v still name the removed %s", k, rank3[k], victim)
		}
	}
	f.sameClaims(t, string(victim)+" removed", keys, during, nil)
}

// waitLists waits until the committed membership seen by node id has n
// members and every key's committed candidates are its ranking over them,
// and returns those rankings.
func (f *farm) waitLists(t testing.TB, id cluster.NodeID, keys []string, n int) map[string][]cluster.NodeID {
	t.Helper()
	node := f.c.Node(id)
	var ranks map[string][]cluster.NodeID
	var why string
	deadline := time.Now().Add(wait)
	for {
		ranks, why = listsMatch(node, keys, n)
		if why == "" {
			return ranks
		}
		if time.Now().After(deadline) {
			t.Fatalf("candidate lists on %s: %s", id, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listsMatch(node *raftowner.Node, keys []string, n int) (map[string][]cluster.NodeID, string) {
	ms := partition.Committed(node).Members()
	if len(ms) != n {
		return nil, fmt.Sprintf("%d members, want %d", len(ms), n)
	}
	pl, err := partition.Build(ms, nil, partition.Options{})
	if err != nil {
		return nil, err.Error()
	}
	rows := map[string][]cluster.NodeID{}
	for _, r := range node.Table() {
		rows[r.Name] = r.Candidates
	}
	ranks := map[string][]cluster.NodeID{}
	for _, k := range keys {
		ranks[k] = pl.Rank(k)
		if got := rows[ownership.TenantResource(k)]; !slices.Equal(got, ranks[k]) {
			return nil, fmt.Sprintf("%s: committed candidates %v, want %v", k, got, ranks[k])
		}
	}
	return ranks, ""
}

// sameClaims checks that every key but the skipped ones is held by the
// node and at the epoch it was at in was: it did not move, nor was it
// released and given back.
func (f *farm) sameClaims(t testing.TB, after string, keys []string, was map[string]ownership.Claim, skip func(string) bool) {
	t.Helper()
	for _, k := range keys {
		if skip != nil && skip(k) {
			continue
		}
		id, e := f.c.WaitHolder(ownership.TenantResource(k), wait, nil)
		if id != was[k].Node || e != was[k].Epoch {
			t.Errorf("after %s, %s is held by %s at epoch %d, want %v (longest scheduling stall %v)\n%s",
				after, k, id, e, was[k], f.log.longestStall(), f.log.history(ownership.TenantResource(k)))
		}
	}
}
