package usrloc

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

func TestReplicationUpdatesAndRemovals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(1)
		defer nw.Close()
		ids := nodeIDs(3)
		nodes := []*node{startNode(t, nw, ids, 0, ReplicatorConfig{NoJoin: true}),
			startNode(t, nw, ids, 1, ReplicatorConfig{NoJoin: true}), startNode(t, nw, ids, 2, ReplicatorConfig{NoJoin: true})}
		clustertest.WaitUp(t, []cluster.Transport{nodes[0].tr, nodes[1].tr, nodes[2].tr})

		registerN(t, nodes[0], 0, 100, "a")
		registerN(t, nodes[1], 100, 200, "b")
		clustertest.Eventually(t, 2*time.Second, func() bool { return converged(nodes...) }, "not converged")
		for _, n := range nodes {
			if n.st.Len() != 200 {
				t.Fatalf("%s holds %d bindings, want 200", n.id, n.st.Len())
			}
		}
		b := nodes[2].st.Lookup("sip:user7@example.com", nil)
		if len(b) != 1 || b[0].Node != "n1" || b[0].UserAgent != "phone-a" || b[0].Expires.Sub(time.Now()) < 59*time.Minute {
			t.Fatalf("replicated binding: %+v", b)
		}
		// Un-register on n3 what n1 registered.
		if _, err := nodes[2].st.Register(reg("sip:user7@example.com", "other", 1, contact(b[0].Contact, 0)), nil); err != nil {
			t.Fatal(err)
		}
		clustertest.Eventually(t, 2*time.Second, func() bool { return len(nodes[0].st.Lookup("sip:user7@example.com", nil)) == 0 }, "removal not replicated")
		clustertest.Eventually(t, 2*time.Second, func() bool { return converged(nodes...) }, "not converged after removal")
		for _, n := range nodes {
			if s := n.rp.Stats(); s.Gaps != 0 || s.Malformed != 0 || s.MergeError != 0 {
				t.Fatalf("%s: %+v", n.id, s)
			}
		}
	})
}

// TestConcurrentWritesConverge: the same binding written on every node at
// once ends the same everywhere, whatever the order of arrival.
func TestConcurrentWritesConverge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(2)
		defer nw.Close()
		nw.Host("n1").SetClock(2*time.Second, 1) // a clock ahead must not win by itself
		ids := nodeIDs(3)
		var nodes []*node
		for i := range ids {
			nodes = append(nodes, startNode(t, nw, ids, i, ReplicatorConfig{NoJoin: true}))
		}
		clustertest.WaitUp(t, []cluster.Transport{nodes[0].tr, nodes[1].tr, nodes[2].tr})
		aor := "sip:shared@example.com"
		for round := 0; round < 20; round++ {
			for i, n := range nodes {
				c := contact("sip:shared@192.0.2.1", time.Hour)
				c.UserAgent = fmt.Sprintf("writer-%d-%d", i, round)
				n.st.Register(reg(aor, fmt.Sprintf("cid-%d", i), uint32(round+1), c), nil)
			}
			time.Sleep(time.Millisecond)
		}
		clustertest.Eventually(t, 2*time.Second, func() bool { return converged(nodes...) }, "concurrent writes did not converge")
		var uas []string
		for _, n := range nodes {
			b := n.st.Lookup(aor, nil)
			if len(b) != 1 {
				t.Fatalf("%s: %d bindings", n.id, len(b))
			}
			uas = append(uas, b[0].UserAgent)
		}
		if uas[0] != uas[1] || uas[1] != uas[2] {
			t.Fatalf("nodes disagree: %v", uas)
		}
	})
}

func TestJoinSyncVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(3)
		defer nw.Close()
		ids := nodeIDs(3)
		cfg := ReplicatorConfig{ChunkBytes: 8 << 10}
		// n1 and n2 do not know n3: nothing is queued for it.
		n1 := startNode(t, nw, ids[:2], 0, ReplicatorConfig{NoJoin: true, ChunkBytes: 8 << 10})
		n2 := startNode(t, nw, ids[:2], 1, ReplicatorConfig{NoJoin: true, ChunkBytes: 8 << 10})
		clustertest.WaitUp(t, []cluster.Transport{n1.tr, n2.tr})
		registerN(t, n1, 0, 3000, "a")
		n1.st.Register(reg("sip:user5@example.com", "cid-a5", 2, contact("sip:u5@192.0.2.5:5065", 0)), nil) // a tombstone
		clustertest.Eventually(t, 2*time.Second, func() bool { return converged(n1, n2) }, "seed")

		n3 := startNode(t, nw, ids, 2, cfg)
		waitSynced(t, n3, 10*time.Second)
		if n3.st.Len() != 2999 || !converged(n1, n2, n3) {
			t.Fatalf("synced with %d bindings, converged=%v", n3.st.Len(), converged(n1, n2, n3))
		}
		st := n3.rp.Stats()
		if st.ChunksReceived < 10 || st.VerifyRounds < 1 {
			t.Fatalf("sync did not stream in chunks or verify: %+v", st)
		}
		t.Logf("stats %+v", st)
	})
}

// TestJoinUnderLoadDonorDies: a node joins while the others take writes;
// its donor dies mid-stream; it resumes with the other, and reports synced
// only with every binding.
func TestJoinUnderLoadDonorDies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(4)
		defer nw.Close()
		ids := nodeIDs(3)
		donor := ReplicatorConfig{NoJoin: true, ChunkBytes: 4 << 10, Window: 2}
		n1 := startNode(t, nw, ids[:2], 0, donor)
		n2 := startNode(t, nw, ids[:2], 1, donor)
		clustertest.WaitUp(t, []cluster.Transport{n1.tr, n2.tr})
		registerN(t, n2, 0, 5000, "b")
		clustertest.Eventually(t, 5*time.Second, func() bool { return converged(n1, n2) }, "seed")

		// Slow links so the stream takes a while; small chunks.
		nw.SetDelay(2 * time.Millisecond)
		n3 := startNode(t, nw, ids, 2, ReplicatorConfig{SyncTimeout: time.Second})
		// Live load on n2 during the sync.
		stop := make(chan struct{})
		done := make(chan struct{})
		var stopOnce sync.Once
		halt := func() { stopOnce.Do(func() { close(stop) }); <-done }
		defer halt()
		go func() {
			defer close(done)
			for i := 5000; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				registerN(t, n2, i, i+1, "live")
				time.Sleep(2 * time.Millisecond)
			}
		}()
		clustertest.Eventually(t, 5*time.Second, func() bool { return n3.rp.Stats().ChunksReceived >= 5 }, "no chunk")
		if n3.rp.Stats().Synced {
			t.Fatal("synced too early for the test")
		}
		// n1 (the donor: lowest ID) dies.
		nw.Kill("n1")
		n1.close()
		waitSynced(t, n3, 20*time.Second)
		halt()
		clustertest.Eventually(t, 5*time.Second, func() bool { return converged(n2, n3) }, "not converged after the load stopped")
		if n3.st.Len() != n2.st.Len() || n3.st.Len() < 5000 {
			t.Fatalf("n3 %d bindings, n2 %d", n3.st.Len(), n2.st.Len())
		}
		st := n3.rp.Stats()
		if st.PullsAborted == 0 {
			t.Fatalf("the donor's death did not abort a pull: %+v", st)
		}
		t.Logf("n3 stats %+v", st)
	})
}

// TestPartitionHealConverges: both sides of a partition take writes and
// deletions; after the heal, anti-entropy makes every node equal.
func TestPartitionHealConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(5)
		defer nw.Close()
		ids := nodeIDs(3)
		cfg := ReplicatorConfig{NoJoin: true, AntiEntropyInterval: time.Second, ChunkBytes: 16 << 10, BatchBytes: 8 << 10}
		nodes := []*node{startNode(t, nw, ids, 0, cfg, smallQueues), startNode(t, nw, ids, 1, cfg, smallQueues), startNode(t, nw, ids, 2, cfg, smallQueues)}
		clustertest.WaitUp(t, []cluster.Transport{nodes[0].tr, nodes[1].tr, nodes[2].tr})
		registerN(t, nodes[0], 0, 500, "a")
		clustertest.Eventually(t, 2*time.Second, func() bool { return converged(nodes...) }, "seed")

		nw.Partition([]string{"n1"}, []string{"n2", "n3"})
		time.Sleep(5 * time.Second) // long enough for the connections to break
		registerN(t, nodes[0], 500, 2000, "a")
		registerN(t, nodes[1], 2000, 3500, "b")
		for i := 0; i < 50; i++ { // deletions on the other side of what n1 wrote
			nodes[2].st.Register(reg(fmt.Sprintf("sip:user%d@example.com", i), "del", 1, contact(fmt.Sprintf("sip:u%d@192.0.2.%d:%d", i, i%250, 5060+i%1000), 0)), nil)
		}
		time.Sleep(time.Second)
		if converged(nodes...) {
			t.Fatal("converged across a partition")
		}
		nw.Heal()
		clustertest.Eventually(t, 10*time.Second, func() bool { return converged(nodes...) }, "not converged after heal")
		for _, n := range nodes {
			if n.st.Len() != 3500-50 {
				t.Fatalf("%s: %d bindings, want 3450", n.id, n.st.Len())
			}
		}
		var repairs uint64
		for _, n := range nodes {
			repairs += n.rp.Stats().PullsDone
			t.Logf("%s %+v", n.id, n.rp.Stats())
		}
		if repairs == 0 || nodes[0].rp.Stats().Gaps == 0 {
			t.Fatal("converged without a gap and a repair pull: the test lost nothing")
		}
	})
}

// TestBatchInterval: with a positive BatchInterval the changes made within
// one interval leave as one batch on its tick; with the default (group
// commit) a change with no broadcast in progress is handed to the
// transport before Register returns, with no timer and no other goroutine.
func TestBatchInterval(t *testing.T) {
	for _, iv := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprint(iv), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clustertest.CheckLeaks(t)
				nw := clustertest.NewNetwork(1)
				defer nw.Close()
				ids := nodeIDs(2)
				cfg := ReplicatorConfig{NoJoin: true, BatchInterval: iv}
				nodes := []*node{startNode(t, nw, ids, 0, cfg), startNode(t, nw, ids, 1, cfg)}
				clustertest.WaitUp(t, []cluster.Transport{nodes[0].tr, nodes[1].tr})
				before := nodes[0].rp.Stats()
				registerN(t, nodes[0], 0, 100, "a")
				// One goroutine registers, so no broadcast is ever in
				// progress when the next change comes.
				if sent := nodes[0].rp.Stats().UpdatesSent - before.UpdatesSent; iv == 0 && sent != 100 {
					t.Fatalf("group commit: %d of 100 changes sent when Register returned", sent)
				} else if iv > 0 && sent != 0 {
					t.Fatalf("%d changes sent before the batch interval's tick", sent)
				}
				for nodes[1].st.Len() < 100 {
					time.Sleep(time.Millisecond)
				}
				n := nodes[0].rp.Stats().Batches - before.Batches
				if iv > 0 && n != 1 {
					t.Fatalf("%d batches for changes within one interval, want 1", n)
				}
				if iv == 0 && n != 100 {
					t.Fatalf("group commit with one writer: %d batches, want 100", n)
				}
			})
		})
	}
}

// TestJoinIgnoresRepairRounds: anti-entropy rounds the donor opens with a
// node that is still joining start no second stream. Before, the joiner
// answered the digests and pulled every differing bucket a second time
// beside its join, and the donor pulled from the joiner, which refused.
func TestJoinIgnoresRepairRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(4)
		defer nw.Close()
		ids := nodeIDs(2)
		// An anti-entropy round at every control tick (50 ms) of n1, and a
		// slow link so the join spans many of them.
		n1 := startNode(t, nw, ids[:1], 0, ReplicatorConfig{NoJoin: true, ChunkBytes: 8 << 10, AntiEntropyInterval: time.Millisecond})
		registerN(t, n1, 0, 3000, "a")
		nw.SetLinkDelay(string(ids[0]), string(ids[1]), 20*time.Millisecond)
		nw.SetLinkDelay(string(ids[1]), string(ids[0]), 20*time.Millisecond)
		start := time.Now()
		n2 := startNode(t, nw, ids, 1, ReplicatorConfig{ChunkBytes: 8 << 10, Window: 1})
		waitSynced(t, n2, 30*time.Second)
		took := time.Since(start)
		if n2.st.Len() != 3000 {
			t.Fatalf("synced with %d of 3000", n2.st.Len())
		}
		s1, s2 := n1.rp.Stats(), n2.rp.Stats()
		t.Logf("join took %v of fake time; joiner %+v; donor %+v", took, s2, s1)
		if took < 500*time.Millisecond {
			t.Fatalf("the join took %v: too short to overlap anti-entropy rounds, the test proves nothing", took)
		}
		if s2.PullsStarted != 1 || s1.PullsStarted != 0 || s1.PullsAborted != 0 {
			t.Fatalf("pulls beside the join: joiner started %d (want 1), donor started %d and aborted %d (want 0)",
				s2.PullsStarted, s1.PullsStarted, s1.PullsAborted)
		}
	})
}
