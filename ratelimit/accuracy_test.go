package ratelimit_test

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ratelimit"
)

const testLimit = 500.0 // calls/s, cluster-wide

func tenantConfig() ratelimit.Config {
	return ratelimit.Config{Pipes: map[string]ratelimit.Limit{"tenant-a": {Rate: testLimit}}}
}

// accuracyRun is the length of each phase of TestAccuracy (fake time).
var accuracyPhase = 7 * time.Second

// TestAccuracy: three nodes with skewed demand (70/20/10 of twice the
// limit), then the demand shifted (10/20/70), then the busiest node killed
// and its calls spread over the survivors. Admitted calls are counted at
// one sink over 1 s windows stepped every 100 ms. From 1 s after each
// change the windows stay within ±5 % of the limit at p1/p99, and no window
// ever exceeds 1.10 × the limit.
//
// Arrivals are Poisson from a seeded generator (the seed is logged and
// replays the run), and the network delays every write by 1 ms and holds
// 1 % of them back for a 200 ms retransmission.
func TestAccuracy(t *testing.T) {
	clustertest.CheckLeaks(t)
	seed := testSeed(t, 21)
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(int64(seed))
		defer nw.Close()
		nodes := memCluster(t, nw, tenantConfig(), "n1", "n2", "n3")
		nw.SetDelay(time.Millisecond)
		nw.SetDropRate(0.01)
		L, ph := testLimit, accuracyPhase
		ld := startLoadSeeded("tenant-a", nodes, rand.New(rand.NewPCG(seed, 0)), 1.4*L, 0.4*L, 0.2*L)
		defer ld.stop()
		warm := 2 * time.Second

		time.Sleep(ph)
		ld.set(0.2*L, 0.4*L, 1.4*L)
		shift := ld.at()
		time.Sleep(ph)
		nw.Kill("n3")
		nodes[2].close()
		ld.set(0.2*L+0.7*L, 0.4*L+0.7*L, 0)
		kill := ld.at()
		time.Sleep(ph)
		end := ld.at()

		all := ld.windows(warm, end)
		b1 := checkBand(t, "skewed 70/20/10", ld.windows(warm, shift), L)
		b2 := checkBand(t, "after shift to 10/20/70 (+1 s)", ld.windows(shift+time.Second, kill), L)
		b3 := checkBand(t, "survivors after kill (+1 s)", ld.windows(kill+time.Second, end), L)
		ball := summarize(all, L)
		t.Logf("whole run incl. transitions: %d windows, min %.3f max %.3f ×limit", ball.n, ball.min, ball.max)
		if ball.max > 1.10 {
			t.Errorf("a window admitted %.3f × the limit, want never above 1.10", ball.max)
		}
		_, _, _ = b1, b2, b3
		for _, ev := range []struct {
			what     string
			at, next time.Duration
		}{{"shift", shift, kill}, {"kill", kill, end}} {
			d := ld.settled(ev.at, ev.next, L)
			t.Logf("after the %s, 1 s windows starting %v later or more are all in band", ev.what, d)
			if d > time.Second {
				t.Errorf("after the %s the rate took %v to settle in band, want ≤ 1s", ev.what, d)
			}
		}
		for i, n := range nodes[:2] {
			ps, _ := n.rl.Pipe("tenant-a")
			t.Logf("n%d: share %.1f demand %.1f admitted %d of %d", i+1, ps.Share, ps.Demand, ps.Admitted, ps.Asked)
		}
	})
}
