package raftowner

import (
	"flag"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

var (
	faultBudget = flag.Duration("ownership.budget", 0, "wall time for TestRandomFaults rounds (default 15s, 0 rounds minimum; soak: 1000 rounds minimum)")
	faultSeed   = flag.Int64("ownership.seed", 0, "run only the TestRandomFaults round with this seed (replays its fault schedule)")
)

// faultStats sums what the rounds did.
type faultStats struct {
	mu             sync.Mutex
	rounds         int
	minorityOwner  int // rounds where a partition left a holder in the minority
	faults         map[string]int
	rejected       int
	epochsObserved int
}

// TestRandomFaults runs randomized fault schedules (symmetric partitions,
// one-way cuts, blackholes, clock-rate skew within ε, kills and restarts)
// on 3 and 5 nodes while actors on every node act as owner whenever Held
// says so, through a downstream that fences by epoch. Every round checks:
// no two nodes held one resource at overlapping times, each epoch had one
// holder, and once the faults heal every resource is held again.
func TestRandomFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("randomized fault rounds skipped in -short mode")
	}
	budget, minRounds := 15*time.Second, soakMinRounds
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
	for i := 0; time.Since(start) < budget || i < minRounds; i++ {
		seed := base + int64(i)
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runFaultRound(t, seed, st) })
		if !ok {
			t.Fatalf("round failed; replay with: go test -race -run 'TestRandomFaults' -ownership.seed=%d ./ownership/raftowner", seed)
		}
	}
	t.Logf("%d rounds in %v; %d put a holder in a partition's minority; faults %v; %d stale actions rejected downstream; %d distinct epochs held",
		st.rounds, time.Since(start).Round(time.Second), st.minorityOwner, st.faults, st.rejected, st.epochsObserved)
}

func runFaultRound(t *testing.T, seed int64, st *faultStats) {
	t.Logf("seed %d", seed)
	base := runtime.NumGoroutine()
	rnd := rand.New(rand.NewSource(seed))
	size := 3
	if rnd.Intn(2) == 0 {
		size = 5
	}
	ids := make([]cluster.NodeID, size)
	for i := range ids {
		ids[i] = cluster.NodeID(fmt.Sprintf("n%d", i+1))
	}
	const eps = 0.01
	c := newTestCluster(t, ids, nil, func(cfg *Config) {
		cfg.HoldDown = 300 * time.Millisecond
		cfg.ClockDrift = eps
	})
	defer checkGoroutines(t, base)
	defer c.close()
	// Each clock runs within ±ε/2 of real time, so any two differ by < ε.
	for _, id := range ids {
		c.nodes[id].clock.set(1 + eps*(rnd.Float64()-0.5))
	}
	var res []string
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("vip/r%d", i)
		cands := append([]cluster.NodeID(nil), ids...)
		rnd.Shuffle(len(cands), func(a, b int) { cands[a], cands[b] = cands[b], cands[a] })
		pol := ownership.Sticky
		if rnd.Intn(2) == 0 {
			pol = ownership.Preferred
		}
		c.ensure(ownership.Spec{Name: name, Candidates: cands[:1+rnd.Intn(len(cands))], Policy: pol})
		res = append(res, name)
	}
	for _, r := range res {
		c.waitHolder(r, 15*time.Second, nil)
	}
	ds := newDownstream()
	acts := startActors(c, ds, res, c.anyNode().cfg.MaxPause, seed)
	actorsStopped := false
	defer func() {
		if !actorsStopped {
			acts.stop()
		}
	}()

	killed := map[cluster.NodeID]bool{}
	minority := false
	steps := 3 + rnd.Intn(4)
	for s := 0; s < steps; s++ {
		kind := []string{"partition", "oneway", "blackhole", "kill", "restart", "skew", "heal"}[rnd.Intn(7)]
		switch kind {
		case "partition":
			perm := rnd.Perm(size)
			small := 1 + rnd.Intn((size-1)/2)
			side := map[cluster.NodeID]bool{}
			for _, i := range perm[:small] {
				side[ids[i]] = true
			}
			for _, r := range res {
				if h, _, n := c.holder(r); n == 1 && side[h] {
					minority = true
				}
			}
			for _, a := range ids {
				for _, b := range ids {
					if a != b && side[a] != side[b] {
						c.cut(a, b)
					}
				}
			}
		case "oneway":
			p := rnd.Perm(size)
			c.cut(ids[p[0]], ids[p[1]])
		case "blackhole":
			c.isolate(ids[rnd.Intn(size)])
		case "kill":
			id := ids[rnd.Intn(size)]
			c.kill(id)
			killed[id] = true
		case "restart":
			for _, id := range ids {
				if killed[id] {
					c.start(id)
					delete(killed, id)
				}
			}
		case "skew":
			c.nodes[ids[rnd.Intn(size)]].clock.set(1 + eps*(rnd.Float64()-0.5))
		case "heal":
			c.heal()
		}
		st.mu.Lock()
		st.faults[kind]++
		st.mu.Unlock()
		time.Sleep(time.Duration(100+rnd.Intn(500)) * time.Millisecond)
	}
	c.heal()
	for _, id := range ids {
		if killed[id] {
			c.start(id)
		}
	}
	for _, r := range res {
		c.waitHolder(r, 20*time.Second, nil)
	}
	acts.stop()
	actorsStopped = true
	if v := ds.violations(); len(v) > 0 {
		t.Fatalf("ownership overlapped (seed %d):\n%v", seed, v)
	}
	for _, r := range res {
		if ds.accepted[r] == 0 {
			t.Errorf("no action on %s was ever accepted", r)
		}
	}
	st.mu.Lock()
	st.rounds++
	if minority {
		st.minorityOwner++
	}
	st.rejected += ds.rejected
	for _, o := range ds.obs {
		seen := map[ownership.Epoch]bool{}
		for _, x := range o {
			seen[x.epoch] = true
		}
		st.epochsObserved += len(seen)
	}
	st.mu.Unlock()
}
