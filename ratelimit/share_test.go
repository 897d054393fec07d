package ratelimit_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
)

// TestSaturatedPeerKeepsShare is the OpenSIPS 2900 case: with replicated
// TAILDROP a node that sees its peer's counter at the limit rejects all of
// its own calls. Here n1 asks for 1.8 × the limit and n2 for 0.2 ×: n2
// still admits its demand-proportional share (about 0.1 × the limit), and
// when the two together ask for less than the limit n2 admits all it asks.
func TestSaturatedPeerKeepsShare(t *testing.T) {
	clustertest.CheckLeaks(t)
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(41)
		defer nw.Close()
		nodes := memCluster(t, nw, tenantConfig(), "n1", "n2")
		L := testLimit
		ld := startLoad("tenant-a", nodes, 1.8*L, 0.2*L)
		defer ld.stop()
		time.Sleep(5 * time.Second)
		busy := ld.at()
		want := L * 0.2 / 2.0
		checkBand(t, "n1+n2", ld.windows(2*time.Second, busy), L)
		quiet := summarize(ld.windows(2*time.Second, busy, 1), want)
		t.Logf("n2 admitted %.3f..%.3f × its proportional share (%.0f calls/s)", quiet.min, quiet.max, want)
		if quiet.min < 0.9 || quiet.max > 1.1 {
			t.Errorf("n2 admitted %.3f..%.3f × its demand-proportional share, want within ±10 %%", quiet.min, quiet.max)
		}

		ld.set(0.9*L, 0.05*L) // together under the limit
		time.Sleep(4 * time.Second)
		under := summarize(ld.windows(busy+time.Second, ld.at(), 1), 0.05*L)
		t.Logf("under the limit n2 admitted %.3f..%.3f × its demand", under.min, under.max)
		if under.min < 0.97 {
			t.Errorf("n2 admitted only %.3f × its demand while the cluster is under the limit", under.min)
		}
	})
}

// TestGoodbyeHandsShareOver: a limiter that closes tells its peers, which
// take its share at once rather than after the silence timeout.
func TestGoodbyeHandsShareOver(t *testing.T) {
	clustertest.CheckLeaks(t)
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(42)
		defer nw.Close()
		nodes := memCluster(t, nw, tenantConfig(), "n1", "n2", "n3")
		L := testLimit
		ld := startLoad("tenant-a", nodes, 0.7*L, 0.7*L, 0.6*L)
		defer ld.stop()
		time.Sleep(2 * time.Second)
		ld.set(L, L, 0)
		nodes[2].rl.Close()
		at := time.Now()
		for {
			p, _ := nodes[0].rl.Pipe("tenant-a")
			if p.Share > 0.45*L {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d := time.Since(at); d > 2*100*time.Millisecond {
			t.Errorf("share taken over %v after the goodbye, want within two intervals", d)
		} else {
			t.Logf("share taken over %v after the goodbye", d)
		}
	})
}

// TestSixteenNodes: the limit holds with 16 nodes of uneven demand.
func TestSixteenNodes(t *testing.T) {
	clustertest.CheckLeaks(t)
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(43)
		defer nw.Close()
		names := make([]string, 16)
		rates := make([]float64, 16)
		for i := range names {
			names[i] = fmt.Sprintf("n%02d", i+1)
			rates[i] = 2 * testLimit * float64(i+1) / 136 // 1..16 parts of twice the limit
		}
		nodes := memCluster(t, nw, tenantConfig(), names...)
		ld := startLoad("tenant-a", nodes, rates...)
		defer ld.stop()
		time.Sleep(5 * time.Second)
		checkBand(t, "16 nodes", ld.windows(2*time.Second, ld.at()), testLimit)
		for _, n := range nodes {
			if s := n.rl.Stats(); s.PeersInContact != 15 || s.MessagesMalformed != 0 {
				t.Errorf("%s: %+v", n.id, s)
			}
		}
	})
}
