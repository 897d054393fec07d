package cluster_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// TestChaos runs seeded random fault schedules against the TCP transport on
// the in-memory network, in fake time, and checks the delivery contract
// throughout:
//
//   - at most once and FIFO: per (sender, receiver, channel) and sender
//     incarnation, sequence numbers only grow;
//   - every loss is reported: Seq = previous Seq + Missed + 1;
//   - the payload, numbered by the sender per destination, equals Seq
//     (nothing is delivered to the wrong peer or channel);
//   - after the last fault heals every node sees every other up again and
//     messages flow between every pair.
//
// Rounds run until the time budget is spent (chaosBudget: a few seconds by
// default, minutes under -tags soak). A failing round prints its seed;
// SIPHA_CHAOS_SEED=<seed> replays exactly that fault schedule.
func TestChaos(t *testing.T) {
	if s := os.Getenv("SIPHA_CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SIPHA_CHAOS_SEED: %v", err)
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { chaosRound(t, seed) })
		return
	}
	start := time.Now()
	seeds := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	rounds := 0
	for time.Since(start) < chaosBudget && !t.Failed() {
		seed := seeds.Uint64()
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { chaosRound(t, seed) })
		rounds++
	}
	t.Logf("%d rounds in %v (replay one with SIPHA_CHAOS_SEED=<seed>)", rounds, time.Since(start).Round(time.Millisecond))
}

// chaosChecker receives on every node and checks the contract.
type chaosChecker struct {
	t     *testing.T
	mu    sync.Mutex
	last  map[string]uint64 // "from>to" → last Seq delivered
	count map[string]int    // "from>to" → messages delivered
	bad   []string
}

func (c *chaosChecker) handler(to cluster.NodeID) cluster.Handler {
	return cluster.HandlerFunc(func(m cluster.Message) {
		key := string(m.From) + ">" + string(to)
		c.mu.Lock()
		defer c.mu.Unlock()
		if m.Restarted {
			c.last[key] = 0 // a new incarnation numbers from 1 again
		}
		prev := c.last[key]
		switch {
		case len(m.Payload) != 8:
			c.bad = append(c.bad, fmt.Sprintf("%s: payload of %d bytes", key, len(m.Payload)))
		case binary.BigEndian.Uint64(m.Payload) != m.Seq:
			c.bad = append(c.bad, fmt.Sprintf("%s: payload %d delivered as Seq %d", key, binary.BigEndian.Uint64(m.Payload), m.Seq))
		case m.Seq <= prev:
			c.bad = append(c.bad, fmt.Sprintf("%s: Seq %d after %d (duplicate or reordered)", key, m.Seq, prev))
		case m.Seq != prev+m.Missed+1:
			c.bad = append(c.bad, fmt.Sprintf("%s: Seq %d after %d with Missed %d (unreported loss)", key, m.Seq, prev, m.Missed))
		}
		c.last[key] = m.Seq
		c.count[key]++
	})
}

func chaosRound(t *testing.T, seed uint64) {
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
		nw := clustertest.NewNetwork(int64(seed))
		defer nw.Close()
		n := 3 + rng.IntN(3)
		names := make([]string, n)
		ids := make([]cluster.NodeID, n)
		for i := range names {
			names[i] = fmt.Sprintf("n%d", i+1)
			ids[i] = cluster.NodeID(names[i])
		}
		chk := &chaosChecker{t: t, last: map[string]uint64{}, count: map[string]int{}}

		// Each node sends to every peer every 20 ms, numbering the
		// payloads per destination as the transport numbers Seq: one per
		// Send, whether it is accepted or not.
		var mu sync.Mutex
		nodes := make([]*cluster.TCP, n)
		start := func(i int) {
			chk.forget(ids[i]) // a new receiver process knows no history
			tr := startMemNode(t, nw, ids, i)
			tr.Handle(cluster.ChannelUser, chk.handler(ids[i]))
			mu.Lock()
			nodes[i] = tr
			mu.Unlock()
		}
		for i := range nodes {
			start(i)
		}
		quit := make(chan struct{})
		var senders sync.WaitGroup
		for i := range nodes {
			senders.Add(1)
			go func() {
				defer senders.Done()
				counter := map[cluster.NodeID]uint64{}
				var cur *cluster.TCP
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				buf := make([]byte, 8)
				for {
					select {
					case <-quit:
						return
					case <-tick.C:
					}
					mu.Lock()
					tr := nodes[i]
					mu.Unlock()
					if tr != cur { // restarted: a new incarnation numbers from 1
						cur, counter = tr, map[cluster.NodeID]uint64{}
					}
					for _, to := range ids {
						if to == ids[i] {
							continue
						}
						counter[to]++
						binary.BigEndian.PutUint64(buf, counter[to])
						tr.Send(to, cluster.ChannelUser, buf)
					}
				}
			}()
		}

		// A random schedule of faults, each lasting a random while.
		steps := 4 + rng.IntN(6)
		var schedule []string
		for s := 0; s < steps; s++ {
			a, b := names[rng.IntN(n)], names[rng.IntN(n)]
			switch k := rng.IntN(7); {
			case k == 0:
				cut := 1 + rng.IntN(n-1)
				nw.Partition(names[:cut], names[cut:])
				schedule = append(schedule, fmt.Sprintf("partition %v|%v", names[:cut], names[cut:]))
			case k == 1 && a != b:
				nw.Cut(a, b)
				schedule = append(schedule, "cut "+a+"→"+b)
			case k == 2:
				nw.Blackhole(a)
				schedule = append(schedule, "blackhole "+a)
			case k == 3:
				i := rng.IntN(n)
				nw.Kill(names[i])
				mu.Lock()
				old := nodes[i]
				mu.Unlock()
				old.Abort()
				time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
				nw.Restart(names[i])
				start(i)
				schedule = append(schedule, "kill+restart "+names[i])
			case k == 4:
				nw.SetDelay(time.Duration(rng.IntN(50)) * time.Millisecond)
				schedule = append(schedule, "delay")
			case k == 5:
				nw.SetDropRate(rng.Float64() * 0.05)
				schedule = append(schedule, "loss")
			default:
				nw.Heal()
				schedule = append(schedule, "heal")
			}
			time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		}
		nw.Heal()
		nw.SetDelay(0)
		nw.SetDropRate(0)

		// Convergence: everyone up, and fresh traffic on every pair.
		up := func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, tr := range nodes {
				for _, m := range tr.Members() {
					if m.State != cluster.StateUp {
						return false
					}
				}
			}
			return true
		}
		deadline := time.Now().Add(10 * time.Second)
		for !up() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !up() {
			t.Fatalf("seed %d: not every node up 10 s after the last heal; schedule %v", seed, schedule)
		}
		before := chk.snapshot()
		time.Sleep(time.Second)
		after := chk.snapshot()
		for _, a := range ids {
			for _, b := range ids {
				if key := string(a) + ">" + string(b); a != b && after[key] <= before[key] {
					t.Errorf("seed %d: no traffic %s after convergence; schedule %v", seed, key, schedule)
				}
			}
		}
		close(quit)
		senders.Wait()
		chk.mu.Lock()
		defer chk.mu.Unlock()
		if len(chk.bad) > 0 {
			t.Fatalf("seed %d: %d contract violations, first: %s; schedule %v", seed, len(chk.bad), chk.bad[0], schedule)
		}
	})
}

// forget drops what a receiver has seen, for its next incarnation.
func (c *chaosChecker) forget(to cluster.NodeID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.last {
		if len(key) > len(to) && key[len(key)-len(to)-1:] == ">"+string(to) {
			delete(c.last, key)
		}
	}
}

func (c *chaosChecker) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.count))
	for k, v := range c.count {
		out[k] = v
	}
	return out
}
