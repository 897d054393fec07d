package raftowner

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

var three = []cluster.NodeID{"n1", "n2", "n3"}

func TestFailoverToStandby(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCluster(t, three, nil, nil)
	defer checkGoroutines(t, base)
	defer c.close()
	waitFor(t, 10*time.Second, "a leader", func() bool { return c.leader() != "" })
	c.ensure(ownership.Spec{Name: "vip/a", Candidates: three, Policy: ownership.Sticky})
	owner, e1 := c.waitHolder("vip/a", 10*time.Second, nil)
	if owner != "n1" {
		t.Fatalf("owner %s, want the primary n1", owner)
	}
	events, stop := ownership.WatchChan(c.node("n2"), "vip/")
	defer stop()

	c.kill("n1")
	owner2, e2 := c.waitHolder("vip/a", 10*time.Second, nil)
	if owner2 != "n2" || e2 <= e1 {
		t.Fatalf("after killing n1: holder %s at epoch %d (was %d), want n2 at a larger epoch", owner2, e2, e1)
	}
	sawAcquired := false
	for !sawAcquired {
		select {
		case e := <-events:
			sawAcquired = e.Kind == ownership.Acquired && e.Claim.Epoch == e2
		case <-time.After(5 * time.Second):
			t.Fatal("n2's watcher got no Acquired")
		}
	}
	// Sticky: n1 comes back and n2 keeps the resource.
	c.start("n1")
	time.Sleep(3 * c.node("n2").cfg.ReassignDelay)
	if owner3, e3, _ := c.holder("vip/a"); owner3 != "n2" || e3 != e2 {
		t.Fatalf("sticky resource moved to %s at %d", owner3, e3)
	}
}

func TestPreferredReturnsAfterHoldDown(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCluster(t, three, nil, func(cfg *Config) { cfg.HoldDown = 500 * time.Millisecond })
	defer checkGoroutines(t, base)
	defer c.close()
	c.ensure(ownership.Spec{Name: "vip/p", Candidates: []cluster.NodeID{"n1", "n2"}, Policy: ownership.Preferred})
	c.waitHolder("vip/p", 10*time.Second, func(id cluster.NodeID) bool { return id == "n1" })
	c.kill("n1")
	_, e2 := c.waitHolder("vip/p", 10*time.Second, func(id cluster.NodeID) bool { return id == "n2" })
	c.start("n1")
	_, e3 := c.waitHolder("vip/p", 15*time.Second, func(id cluster.NodeID) bool { return id == "n1" })
	if e3 <= e2 {
		t.Fatalf("epoch did not grow: %d then %d", e2, e3)
	}
}

func TestIsolatedOwnerReleasesWithinLease(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCluster(t, three, nil, nil)
	defer checkGoroutines(t, base)
	defer c.close()
	c.ensure(ownership.Spec{Name: "vip/i", Candidates: []cluster.NodeID{"n3", "n2", "n1"}})
	c.waitHolder("vip/i", 10*time.Second, func(id cluster.NodeID) bool { return id == "n3" })
	n3 := c.node("n3")
	cut := time.Now()
	c.isolate("n3")
	waitFor(t, 5*time.Second, "n3 to let go", func() bool { _, ok := n3.Held("vip/i"); return !ok })
	if d := time.Since(cut); d > 2*n3.cfg.Lease+n3.cfg.MaxPause {
		t.Logf("n3 let go %v after the cut (lease %v)", d, n3.cfg.Lease)
	}
	owner, _ := c.waitHolder("vip/i", 10*time.Second, nil)
	if owner == "n3" {
		t.Fatal("isolated node still holds")
	}
}

// A one-way cut from the owner to the leader: the owner still hears the
// leader (heartbeats, log) but its renewals never arrive; it must stop.
func TestOneWayCutOwnerStops(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCluster(t, three, nil, nil)
	defer checkGoroutines(t, base)
	defer c.close()
	waitFor(t, 10*time.Second, "a leader", func() bool { return c.leader() != "" })
	leader := c.leader()
	var owner cluster.NodeID
	for _, id := range three {
		if id != leader {
			owner = id
			break
		}
	}
	c.ensure(ownership.Spec{Name: "vip/o", Candidates: []cluster.NodeID{owner}})
	c.waitHolder("vip/o", 10*time.Second, nil)
	c.net.setCut(owner, leader, true) // renewals lost; Raft still flows
	waitFor(t, 5*time.Second, "the owner to stop", func() bool { _, ok := c.node(owner).Held("vip/o"); return !ok })
	if c.node(owner).Leader() != leader {
		t.Logf("leader changed during the test")
	}
}

func TestShutdownHandsOver(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCluster(t, three, nil, nil)
	defer checkGoroutines(t, base)
	defer c.close()
	c.ensure(ownership.Spec{Name: "vip/s", Candidates: three})
	c.waitHolder("vip/s", 10*time.Second, func(id cluster.NodeID) bool { return id == "n1" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n1 := c.node("n1")
	ds := newDownstream()
	a := startActors(c, ds, []string{"vip/s"}, 0, 1)
	start := time.Now()
	if err := n1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	c.mu.Lock()
	c.nodes["n1"].node = nil
	c.mu.Unlock()
	c.nodes["n1"].tr.Close()
	owner, _ := c.waitHolder("vip/s", 10*time.Second, nil)
	a.stop()
	if owner != "n2" {
		t.Fatalf("after shutdown of n1 the holder is %s, want n2", owner)
	}
	if v := ds.violations(); len(v) > 0 {
		t.Fatalf("overlapping owners: %v", v)
	}
	t.Logf("graceful handover took %v (ReassignDelay %v)", took, n1.cfg.ReassignDelay)
}

func TestArbiterPair(t *testing.T) {
	base := runtime.NumGoroutine()
	ids := []cluster.NodeID{"sip1", "sip2", "arb"}
	roles := map[cluster.NodeID]Role{"arb": RoleArbiter}
	c := newTestCluster(t, ids, roles, nil)
	defer checkGoroutines(t, base)
	defer c.close()
	res := []string{"vip/1", "node/sip1", "node/sip2"}
	c.ensure(ownership.Spec{Name: res[0], Policy: ownership.Sticky})
	c.ensure(ownership.Spec{Name: res[1], Candidates: []cluster.NodeID{"sip1", "sip2"}})
	c.ensure(ownership.Spec{Name: res[2], Candidates: []cluster.NodeID{"sip2", "sip1"}})
	for _, r := range res {
		if id, _ := c.waitHolder(r, 10*time.Second, nil); id == "arb" {
			t.Fatalf("arbiter holds %s", r)
		}
	}
	// Kill the arbiter: nothing changes hands.
	before := map[string]ownership.Epoch{}
	for _, r := range res {
		_, before[r], _ = c.holder(r)
	}
	c.kill("arb")
	time.Sleep(3 * c.node("sip1").cfg.ReassignDelay)
	for _, r := range res {
		if _, e, n := c.holder(r); n != 1 || e != before[r] {
			t.Fatalf("%s changed hands when the arbiter died: epoch %d→%d, holders %d", r, before[r], e, n)
		}
	}
	c.start("arb")
	// Kill sip1: sip2 owns everything.
	c.kill("sip1")
	for _, r := range res {
		c.waitHolder(r, 10*time.Second, func(id cluster.NodeID) bool { return id == "sip2" })
	}
}
