package raftowner

import (
	"runtime"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

func TestDownstreamViolations(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := newDownstream()
	ok.observe("r", observation{node: "a", epoch: 1, start: at(0), end: at(1)})
	ok.observe("r", observation{node: "a", epoch: 1, start: at(10), end: at(11)})
	ok.observe("r", observation{node: "b", epoch: 2, start: at(12), end: at(13)})
	if v := ok.violations(); len(v) != 0 {
		t.Fatalf("clean history flagged: %v", v)
	}
	bad := newDownstream()
	bad.observe("r", observation{node: "a", epoch: 1, start: at(0), end: at(1)})
	bad.observe("r", observation{node: "b", epoch: 2, start: at(5), end: at(6)})
	bad.observe("r", observation{node: "a", epoch: 1, start: at(8), end: at(9)}) // a still held after b
	if v := bad.violations(); len(v) != 1 {
		t.Fatalf("overlap not flagged once: %v", v)
	}
	dup := newDownstream()
	dup.observe("r", observation{node: "a", epoch: 3, start: at(0), end: at(1)})
	dup.observe("r", observation{node: "b", epoch: 3, start: at(2), end: at(3)})
	if v := dup.violations(); len(v) == 0 {
		t.Fatal("one epoch held by two nodes not flagged")
	}
	if !ok.act("r", 2) || ok.act("r", 1) || ok.rejected != 1 {
		t.Fatal("downstream accepted a stale epoch")
	}
}

// TestCheckerCatchesUnsafeConfig breaks the lease inequality on purpose
// (the owner's lease is far longer than the leaders' reassignment delay,
// a mixed configuration Validate cannot see) and expects the fault checker
// to report overlapping owners: evidence that the checker can fail.
func TestCheckerCatchesUnsafeConfig(t *testing.T) {
	base := runtime.NumGoroutine()
	c := newTestCluster(t, three, nil, func(cfg *Config) {
		if cfg.ID == "n1" {
			cfg.Lease = 3 * time.Second
			cfg.ReassignDelay = 4 * time.Second
		}
	})
	defer checkGoroutines(t, base)
	defer c.close()
	c.ensure(ownership.Spec{Name: "vip/u", Candidates: []cluster.NodeID{"n1", "n2", "n3"}})
	c.waitHolder("vip/u", 10*time.Second, func(id cluster.NodeID) bool { return id == "n1" })
	ds := newDownstream()
	a := startActors(c, ds, []string{"vip/u"}, 0, 1)
	c.isolate("n1")
	waitFor(t, 10*time.Second, "another node to hold", func() bool {
		for _, id := range []cluster.NodeID{"n2", "n3"} {
			if _, ok := c.node(id).Held("vip/u"); ok {
				return true
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	a.stop()
	if v := ds.violations(); len(v) == 0 {
		t.Fatal("unsafe configuration produced no overlap: the checker is blind")
	}
}
