package dialog

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

var (
	chaosSeed  = flag.Int64("dialog.seed", 0, "replay TestChaos with this seed (0: a new one per round)")
	chaosSteps = flag.Int("dialog.steps", 60, "steps per TestChaos round")
	chaosRound = flag.Int("dialog.rounds", 1, "TestChaos rounds")
)

// TestChaos creates, answers and ends calls on random nodes while killing,
// restarting and partitioning nodes, then heals everything, lets every
// remaining call time out and checks the invariants:
//   - every node ends with the same table, and each node's cluster-wide
//     count equals its live dialogs (0 at the end);
//   - no count ever went below zero (Stats().Underflows == 0, every
//     incarnation of every node);
//   - every dialog created was seen by the cluster (none dropped), ended,
//     and its terminate hook fired at least once, every firing with the
//     same EventID; duplicates are reported.
//
// The seed is logged; -dialog.seed=N replays the schedule of faults and
// operations (goroutine timing is not replayed).
func TestChaos(t *testing.T) {
	for round := range *chaosRound {
		seed := *chaosSeed
		if seed == 0 {
			seed = time.Now().UnixNano()%1_000_000_000 + int64(round)
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (replay: go test -run TestChaos -dialog.seed=%d ./dialog)", seed, seed)
			chaosRoundRun(t, seed, *chaosSteps)
		})
	}
}

func chaosRoundRun(t *testing.T, seed int64, steps int) {
	clustertest.CheckLeaks(t)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	c := newTestCluster(t, seed, 3, func(cfg *Config) {
		cfg.EarlyTimeout, cfg.AckTimeout, cfg.MaxDuration = 3*time.Second, time.Second, 2*time.Second
	})
	var created []ID
	origin := map[ID]cluster.NodeID{}
	down := map[cluster.NodeID]bool{}
	partitioned := false
	pick := func() cluster.NodeID {
		for {
			id := c.ids[rng.IntN(len(c.ids))]
			if !down[id] {
				return id
			}
		}
	}
	var ops []string
	for step := range steps {
		switch p := rng.IntN(100); {
		case p < 45:
			via := pick()
			d := c.D(via)
			id := ID{fmt.Sprintf("s%d-%d", seed, step), "ft"}
			if d.Begin(id) != nil {
				continue
			}
			created = append(created, id)
			origin[id] = via
			d.AddProfile(id, "p", "")
			if rng.IntN(10) < 7 {
				d.Answer(id, "tt")
				if rng.IntN(2) == 0 {
					d.Ack(id)
				}
			}
			ops = append(ops, "create@"+string(via))
		case p < 70 && len(created) > 0:
			via := pick()
			id := created[rng.IntN(len(created))]
			err := c.D(via).Bye(id, Party(1+rng.IntN(2)))
			ops = append(ops, fmt.Sprintf("bye@%s:%v", via, err == nil))
		case p < 77 && !partitioned && len(down) == 0:
			victim := pick()
			// A node that crashes before its updates leave loses them,
			// as any asynchronous replication does; wait for them first.
			c.Eventually(5*time.Second, "replication before a kill", func() bool {
				for id, o := range origin {
					if o != victim {
						continue
					}
					seen := false
					for _, other := range c.ids {
						if other != victim {
							if _, ok := c.D(other).Get(id); ok {
								seen = true
							}
						}
					}
					if !seen {
						return false
					}
				}
				return true
			})
			c.Kill(victim)
			down[victim] = true
			ops = append(ops, "kill "+string(victim))
		case p < 84 && len(down) > 0:
			for id := range down {
				c.Start(id)
				delete(down, id)
				ops = append(ops, "restart "+string(id))
				break
			}
		case p < 90 && !partitioned && len(down) == 0:
			alone := pick()
			var rest []string
			for _, id := range c.ids {
				if id != alone {
					rest = append(rest, string(id))
				}
			}
			c.Net.Partition([]string{string(alone)}, rest)
			partitioned = true
			ops = append(ops, "isolate "+string(alone))
		case p < 96 && partitioned:
			c.Net.Heal()
			partitioned = false
			ops = append(ops, "heal")
		}
		time.Sleep(time.Duration(10+rng.IntN(90)) * time.Millisecond)
	}
	t.Logf("%d ops: %v", len(ops), ops)
	c.Net.Heal()
	for id := range down {
		c.Start(id)
	}
	c.WaitReady()
	// Every call not ended by a BYE times out within 3 s of its creation.
	c.Eventually(30*time.Second, "every call ended everywhere and every node agrees", func() bool {
		live, ok := converged(c) // sets c.why
		if !ok {
			return false
		}
		if live != 0 {
			c.why = fmt.Sprintf("%d live dialogs", live)
			return false
		}
		for _, id := range created {
			if len(c.hooks.get(id)) == 0 {
				c.why = "no terminate hook for " + id.String()
				return false
			}
		}
		return true
	})
	// Let late duplicates arrive before counting them.
	time.Sleep(500 * time.Millisecond)
	ref := c.Running()[0]
	dups := 0
	for _, id := range created {
		if in, ok := ref.Get(id); !ok || in.State != Terminated {
			t.Errorf("%s: dropped or not ended (%v, %v)", id, ok, in.State)
		}
		evs := c.hooks.get(id)
		for _, ev := range evs {
			if ev.EventID != evs[0].EventID || ev.EventID != id.String() {
				t.Errorf("%s: hook fired with IDs %q and %q", id, evs[0].EventID, ev.EventID)
			}
		}
		dups += len(evs) - 1
	}
	under := c.underflows
	for _, d := range c.Running() {
		under += d.Stats().Underflows
		if n := d.Count("p", ""); n != 0 {
			t.Errorf("%s counts %d at the end", d.LocalID(), n)
		}
	}
	if under != 0 {
		t.Errorf("%d profile count underflows", under)
	}
	t.Logf("%d dialogs, all ended, every hook fired; %d duplicate firings (same EventID)", len(created), dups)
}
