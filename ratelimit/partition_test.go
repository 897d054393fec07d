package ratelimit_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
)

// TestPartitionBound: n1 (70 % of the demand) is cut off from n2 and n3.
// n1 cannot tell whether the others died, so it keeps admitting at most
// its last agreed share even when its own demand grows; n2 and n3, a
// majority, take n1's share back. The cluster admits at most the limit plus
// n1's safe share, and after the heal the limit again.
//
// The one-way variant cuts only n1's packets to the others: n1 still hears
// them, they do not hear n1.
func TestPartitionBound(t *testing.T) {
	t.Run("two-way", func(t *testing.T) {
		testPartitionBound(t, true, func(nw *clustertest.Network) { nw.Partition([]string{"n1"}, []string{"n2", "n3"}) })
	})
	t.Run("one-way", func(t *testing.T) {
		// n1 still hears the others' demand grow, so its share may shrink
		// below its safe share; it must not grow above it.
		testPartitionBound(t, false, func(nw *clustertest.Network) { nw.Cut("n1", "n2"); nw.Cut("n1", "n3") })
	})
}

func testPartitionBound(t *testing.T, keepsSafe bool, cut func(*clustertest.Network)) {
	clustertest.CheckLeaks(t)
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(31)
		defer nw.Close()
		nodes := memCluster(t, nw, tenantConfig(), "n1", "n2", "n3")
		L := testLimit
		ld := startLoad("tenant-a", nodes, 1.4*L, 0.4*L, 0.2*L)
		defer ld.stop()
		time.Sleep(3 * time.Second)
		before, _ := nodes[0].rl.Pipe("tenant-a")
		safe := before.Share

		cut(nw)
		at := ld.at()
		ld.set(3*L, 0.8*L, 0.4*L) // all demand grows; n2+n3 now ask for more than the limit
		time.Sleep(5 * time.Second)
		nw.Heal()
		heal := ld.at()
		time.Sleep(4 * time.Second)
		end := ld.at()

		t.Logf("n1's share before the partition: %.1f calls/s (%.3f × limit)", safe, safe/L)
		total := summarize(ld.windows(at, heal), L)
		t.Logf("whole cluster during the partition: max %.3f × limit (bound %.3f)", total.max, (L+safe)/L)
		if total.max*L > 1.02*(L+safe) {
			t.Errorf("cluster admitted %.3f × limit during the partition, above limit + safe share (%.3f)", total.max, (L+safe)/L)
		}
		// From 1 s after the cut: the majority admits the full limit, the
		// minority its safe share.
		checkBand(t, "n2+n3 during the partition (+1 s)", ld.windows(at+time.Second, heal, 1, 2), L)
		iso := summarize(ld.windows(at+time.Second, heal, 0), safe)
		t.Logf("n1 during the partition: min %.3f max %.3f × its safe share", iso.min, iso.max)
		if iso.max > 1.05 || (keepsSafe && iso.min < 0.95) {
			t.Errorf("isolated n1 admitted %.3f..%.3f × its safe share, want within ±5 %%", iso.min, iso.max)
		}
		d := ld.settled(heal, end, L)
		t.Logf("after the heal, windows starting %v later or more are in band", d)
		if d > 2*time.Second {
			t.Errorf("cluster took %v to settle after the heal", d)
		}
	})
}

// TestTwoNodeTie: two nodes split evenly cannot form a majority; the side
// with the lower node ID takes the whole limit and the other keeps its
// safe share, so the cluster admits at most 1.5 × the limit.
func TestTwoNodeTie(t *testing.T) {
	clustertest.CheckLeaks(t)
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(32)
		defer nw.Close()
		nodes := memCluster(t, nw, tenantConfig(), "n1", "n2")
		L := testLimit
		ld := startLoad("tenant-a", nodes, L, L)
		defer ld.stop()
		time.Sleep(2 * time.Second)
		nw.Partition([]string{"n1"}, []string{"n2"})
		cut := ld.at()
		time.Sleep(4 * time.Second)
		end := ld.at()
		checkBand(t, "n1 (lower ID) alone", ld.windows(cut+time.Second, end, 0), L)
		checkBand(t, "n2 on its safe share", ld.windows(cut+time.Second, end, 1), L/2)
		if s := nodes[1].rl.Stats(); s.Quorum {
			t.Error("n2 believes it has a quorum on its own")
		}
	})
}
