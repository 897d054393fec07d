package raftowner_test

import (
	"flag"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
)

var (
	faultBudget = flag.Duration("ownership.budget", 0, "wall time for TestRandomFaults (default 20s; under -tags soak at least 1000 rounds run)")
	faultSeed   = flag.Int64("ownership.seed", 0, "run only the TestRandomFaults round with this seed, replaying its fault schedule")
)

// faultStats sums what the rounds did.
type faultStats struct {
	rounds, minorityOwner, rejected, epochs int
	faults                                  map[string]int
}

// TestRandomFaults runs randomized fault schedules on 3 and 5 nodes over
// the real TCP transport on clustertest's network: symmetric partitions,
// one-way cuts, silent blackholes, clock-rate skew within ε (and offsets of
// up to an hour, which must not matter), kills and restarts with the same
// data directory. Actors on every node act as owner whenever Held says so,
// pausing now and then (within P, and rarely far beyond it), through a
// downstream that fences by epoch. Each round checks that no two nodes held
// a resource at overlapping times, that each epoch had one holder, and that
// once the faults heal every resource is held again.
func TestRandomFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("randomized fault rounds skipped in -short mode")
	}
	budget := 20 * time.Second
	if *faultBudget > 0 {
		budget = *faultBudget
	}
	st := &faultStats{faults: map[string]int{}}
	if *faultSeed != 0 {
		runFaultRound(t, *faultSeed, st)
		return
	}
	base := time.Now().UnixNano() % 1e9
	start := time.Now()
	for i := 0; time.Since(start) < budget || i < soakMinRounds; i++ {
		seed := base + int64(i)
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runFaultRound(t, seed, st) }) {
			t.Fatalf("replay the failed round with: go test -race -run TestRandomFaults ./ownership/raftowner -ownership.seed=%d", seed)
		}
	}
	t.Logf("%d rounds in %v; %d put a holder in a partition's minority; faults %v; %d stale actions rejected downstream; %d epochs held",
		st.rounds, time.Since(start).Round(time.Second), st.minorityOwner, st.faults, st.rejected, st.epochs)
}

func runFaultRound(t *testing.T, seed int64, st *faultStats) {
	t.Logf("seed %d", seed)
	clustertest.CheckLeaks(t)
	rnd := rand.New(rand.NewSource(seed))
	size := 3 + 2*rnd.Intn(2)
	ids := make([]cluster.NodeID, size)
	names := make([]string, size)
	for i := range ids {
		ids[i] = cluster.NodeID(fmt.Sprintf("n%d", i+1))
		names[i] = string(ids[i])
	}
	const eps = 0.01
	// Each clock runs within ±ε/2 of true time, so any two differ by < ε,
	// and starts up to an hour off, which must not matter.
	rate := func() float64 { return 1 + eps*(rnd.Float64()-0.5) }
	clocks := map[cluster.NodeID][2]float64{}
	for _, id := range ids {
		clocks[id] = [2]float64{float64(time.Duration(rnd.Int63n(int64(2*time.Hour))) - time.Hour), rate()}
	}
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: ids, Seed: seed,
		Clock: func(id cluster.NodeID) (time.Duration, float64) { return time.Duration(clocks[id][0]), clocks[id][1] },
		Tune: func(cfg *raftowner.Config) {
			cfg.HoldDown = 300 * time.Millisecond
			cfg.ClockDrift = eps
		}})
	var res []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("vip/r%d", i)
		cands := append([]cluster.NodeID(nil), ids...)
		rnd.Shuffle(len(cands), func(a, b int) { cands[a], cands[b] = cands[b], cands[a] })
		pol := ownership.Sticky
		if rnd.Intn(2) == 0 {
			pol = ownership.Preferred
		}
		c.Ensure(ownership.Spec{Name: name, Candidates: cands[:1+rnd.Intn(len(cands))], Policy: pol})
		res = append(res, name)
	}
	for _, r := range res {
		c.WaitHolder(r, wait, nil)
	}
	h := ownershiptest.NewHistory()
	acts := ownershiptest.StartActors(c, h, res, c.Any().Config().MaxPause, seed)
	defer acts.Stop()

	killed := map[cluster.NodeID]bool{}
	minority := false
	for steps := 3 + rnd.Intn(4); steps > 0; steps-- {
		kind := []string{"partition", "oneway", "blackhole", "kill", "restart", "skew", "heal"}[rnd.Intn(7)]
		switch kind {
		case "partition":
			perm := rnd.Perm(size)
			small := 1 + rnd.Intn((size-1)/2)
			var a, b []string
			side := map[cluster.NodeID]bool{}
			for k, i := range perm {
				if k < small {
					a = append(a, names[i])
					side[ids[i]] = true
				} else {
					b = append(b, names[i])
				}
			}
			for _, r := range res {
				if id, _, n := c.Holder(r); n == 1 && side[id] {
					minority = true
				}
			}
			c.Net.Partition(a, b)
		case "oneway":
			p := rnd.Perm(size)
			c.Net.Cut(names[p[0]], names[p[1]])
		case "blackhole":
			c.Net.Blackhole(names[rnd.Intn(size)])
		case "kill":
			id := ids[rnd.Intn(size)]
			c.Kill(id)
			killed[id] = true
		case "restart":
			for _, id := range ids {
				if killed[id] {
					c.Start(id)
					delete(killed, id)
				}
			}
		case "skew":
			c.SetClockRate(ids[rnd.Intn(size)], rate())
		case "heal":
			c.Net.Heal()
		}
		st.faults[kind]++
		time.Sleep(time.Duration(100+rnd.Intn(500)) * time.Millisecond)
	}
	c.Net.Heal()
	for _, id := range ids {
		if killed[id] {
			c.Start(id)
		}
	}
	// Liveness: once healed, every resource is held again and its holder's
	// actions get through.
	for _, r := range res {
		c.WaitHolder(r, 30*time.Second, nil)
		before := h.Accepted(r)
		ownershiptest.WaitFor(t, wait, "an accepted action on "+r, func() bool { return h.Accepted(r) > before })
	}
	acts.Stop()
	if v := h.Violations(); len(v) > 0 {
		t.Fatalf("ownership overlapped (seed %d):\n%v", seed, v)
	}
	st.rounds++
	if minority {
		st.minorityOwner++
	}
	st.rejected += h.Rejected()
	st.epochs += h.Epochs()
}
