package cluster_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// memCluster starts one TCP transport per name on an in-memory network, each
// on its own host, all knowing each other.
func memCluster(t *testing.T, nw *clustertest.Network, names ...string) []*cluster.TCP {
	t.Helper()
	ids := make([]cluster.NodeID, len(names))
	for i, n := range names {
		ids[i] = cluster.NodeID(n)
	}
	out := make([]*cluster.TCP, len(names))
	for i := range names {
		out[i] = startMemNode(t, nw, ids, i)
	}
	return out
}

// startMemNode starts node i of ids on host ids[i].
func startMemNode(t *testing.T, nw *clustertest.Network, ids []cluster.NodeID, i int) *cluster.TCP {
	t.Helper()
	return clustertest.StartTCP(t, nw, ids, i, func(c *cluster.Config) { c.Secret = testSecret })
}

func TestTCPConformanceMemNetwork(t *testing.T) {
	clustertest.RunTransport(t, func(t *testing.T, ids []cluster.NodeID) []cluster.Transport {
		nw := clustertest.NewNetwork(1)
		t.Cleanup(func() { nw.Close() })
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = string(id)
		}
		return asTransports(memCluster(t, nw, names...))
	})
}

// events records liveness events with the (fake) time they arrived.
type events struct {
	mu  sync.Mutex
	log []string
	at  map[string]time.Time // "from->peer:state" → first time seen
}

func watchAll(trs []*cluster.TCP) *events {
	ev := &events{at: map[string]time.Time{}}
	for _, tr := range trs {
		self := tr.LocalID()
		tr.WatchMembers(func(e cluster.MemberEvent) {
			ev.mu.Lock()
			defer ev.mu.Unlock()
			key := fmt.Sprintf("%s->%s:%s", self, e.ID, e.State)
			ev.log = append(ev.log, key)
			if _, ok := ev.at[key]; !ok {
				ev.at[key] = time.Now()
			}
		})
	}
	return ev
}

func (ev *events) seen(key string) (time.Time, bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	at, ok := ev.at[key]
	return at, ok
}

func (ev *events) snapshot() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return append([]string(nil), ev.log...)
}

func (ev *events) count(state cluster.State) int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	suffix := ":" + state.String()
	for _, k := range ev.log {
		if len(k) > len(suffix) && k[len(k)-len(suffix):] == suffix {
			n++
		}
	}
	return n
}

// stateOf is what from sees of peer.
func stateOf(from *cluster.TCP, peer cluster.NodeID) cluster.State {
	for _, m := range from.Members() {
		if m.ID == peer {
			return m.State
		}
	}
	return cluster.StateUnknown
}

// sleepUntil advances fake time in steps until cond holds or limit passes.
func sleepUntil(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// traffic makes every node broadcast a numbered message every 10 ms and
// records what each node receives, until stop.
type traffic struct {
	mu    sync.Mutex
	recv  map[string]int // "from->to" → messages delivered
	quit  chan struct{}
	wg    sync.WaitGroup
	gaps  int
	resta int
}

func startTraffic(trs []*cluster.TCP) *traffic {
	tf := &traffic{recv: map[string]int{}, quit: make(chan struct{})}
	for _, tr := range trs {
		self := tr.LocalID()
		tr.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(m cluster.Message) {
			tf.mu.Lock()
			tf.recv[string(m.From)+"->"+string(self)]++
			if m.Missed > 0 {
				tf.gaps++
			}
			tf.mu.Unlock()
		}))
		tf.wg.Add(1)
		go func() {
			defer tf.wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tf.quit:
					return
				case <-tick.C:
					tr.Broadcast(cluster.ChannelUser, []byte("tick"))
				}
			}
		}()
	}
	return tf
}

func (tf *traffic) stop() { close(tf.quit); tf.wg.Wait() }

func (tf *traffic) snapshot() map[string]int {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	out := make(map[string]int, len(tf.recv))
	for k, v := range tf.recv {
		out[k] = v
	}
	return out
}

// TestPartitionDownHealUp: a partition marks the peers across it down
// within the LAN bound, no message crosses it, and after Heal every peer is
// up again and traffic flows, with the lost messages reported as gaps.
func TestPartitionDownHealUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(7)
		defer nw.Close()
		trs := memCluster(t, nw, "n1", "n2", "n3")
		ev := watchAll(trs)
		clustertest.WaitUp(t, asTransports(trs))
		tf := startTraffic(trs)
		defer tf.stop()
		time.Sleep(200 * time.Millisecond)

		cutAt := time.Now()
		nw.Partition([]string{"n1"}, []string{"n2", "n3"})
		synctest.Wait()
		before := tf.snapshot()
		for _, k := range []string{"n1->n2:down", "n1->n3:down", "n2->n1:down", "n3->n1:down"} {
			sleepUntil(t, 2*time.Second, func() bool { _, ok := ev.seen(k); return ok }, k+" never seen")
			at, _ := ev.seen(k)
			// Detection bound: the last answered ping is at most one
			// interval before the cut, then DeadTimeout plus a check tick.
			if d := at.Sub(cutAt); d > 500*time.Millisecond {
				t.Errorf("%s took %v after the partition, want ≤ 500ms", k, d)
			}
		}
		if stateOf(trs[1], "n3") != cluster.StateUp {
			t.Fatal("n2 lost sight of n3 on its own side of the partition")
		}
		time.Sleep(time.Second)
		during := tf.snapshot()
		for _, k := range []string{"n1->n2", "n1->n3", "n2->n1", "n3->n1"} {
			if during[k] != before[k] {
				t.Fatalf("%d messages %s crossed the partition", during[k]-before[k], k)
			}
		}
		if during["n2->n3"] <= before["n2->n3"] {
			t.Fatal("traffic inside a side of the partition stopped")
		}

		nw.Heal()
		sleepUntil(t, 5*time.Second, func() bool {
			for _, a := range trs {
				for _, m := range a.Members() {
					if m.State != cluster.StateUp {
						return false
					}
				}
			}
			return true
		}, "not every peer up after heal")
		time.Sleep(200 * time.Millisecond)
		after := tf.snapshot()
		for _, k := range []string{"n1->n2", "n2->n1"} {
			if after[k] <= during[k] {
				t.Fatalf("no traffic %s after heal", k)
			}
		}
		t.Logf("events: %v", ev.snapshot())
	})
}

// TestBlackholeDetectedWithinBound: a host that vanishes silently (no reset,
// the common real failure) is suspected, then declared down within 500 ms.
func TestBlackholeDetectedWithinBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(3)
		defer nw.Close()
		trs := memCluster(t, nw, "n1", "n2")
		ev := watchAll(trs)
		clustertest.WaitUp(t, asTransports(trs))
		time.Sleep(333 * time.Millisecond) // not aligned with a heartbeat
		at := time.Now()
		nw.Blackhole("n2")
		sleepUntil(t, 2*time.Second, func() bool { _, ok := ev.seen("n1->n2:down"); return ok }, "blackholed peer never down")
		suspect, ok := ev.seen("n1->n2:suspect")
		down, _ := ev.seen("n1->n2:down")
		if !ok || suspect.After(down) {
			t.Errorf("no suspect state before down")
		}
		if d := down.Sub(at); d > 500*time.Millisecond {
			t.Fatalf("blackhole detected after %v, want ≤ 500ms", d)
		}
		t.Logf("suspect after %v, down after %v", suspect.Sub(at), down.Sub(at))
	})
}

// TestKilledProcessDetectedAtOnce: a process that dies resets its
// connections and refuses new ones; that is declared down without waiting
// for the heartbeat timeout. A restarted process is up again.
func TestKilledProcessDetectedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(4)
		defer nw.Close()
		ids := []cluster.NodeID{"n1", "n2"}
		trs := memCluster(t, nw, "n1", "n2")
		ev := watchAll(trs)
		clustertest.WaitUp(t, asTransports(trs))
		at := time.Now()
		nw.Kill("n2")
		sleepUntil(t, 2*time.Second, func() bool { _, ok := ev.seen("n1->n2:down"); return ok }, "killed peer never down")
		down, _ := ev.seen("n1->n2:down")
		if d := down.Sub(at); d > 200*time.Millisecond {
			t.Fatalf("killed process detected after %v: the reset and the refused dial should tell at once", d)
		}
		trs[1].Close() // the dead process's leftovers
		nw.Restart("n2")
		n2 := startMemNode(t, nw, ids, 1)
		sleepUntil(t, 5*time.Second, func() bool { return stateOf(trs[0], "n2") == cluster.StateUp && stateOf(n2, "n1") == cluster.StateUp },
			"restarted peer not up")
		t.Logf("down after %v", down.Sub(at))
	})
}

// TestOneWayCut: when n1's packets to n2 vanish but n2's reach n1, neither
// can complete a round trip, so both declare the other down; the third node
// still sees both.
func TestOneWayCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(5)
		defer nw.Close()
		trs := memCluster(t, nw, "n1", "n2", "n3")
		clustertest.WaitUp(t, asTransports(trs))
		nw.Cut("n1", "n2")
		sleepUntil(t, 2*time.Second, func() bool {
			return stateOf(trs[0], "n2") == cluster.StateDown && stateOf(trs[1], "n1") == cluster.StateDown
		}, "a one-way cut left a side believing the other up")
		time.Sleep(time.Second)
		if stateOf(trs[2], "n1") != cluster.StateUp || stateOf(trs[2], "n2") != cluster.StateUp {
			t.Fatal("n3 lost n1 or n2 over a cut between them")
		}
		nw.Heal()
		sleepUntil(t, 5*time.Second, func() bool {
			return stateOf(trs[0], "n2") == cluster.StateUp && stateOf(trs[1], "n1") == cluster.StateUp
		}, "not up after the cut healed")
	})
}

// TestNoFlappingUnderLoss: with 2% of writes delayed by a 200 ms
// retransmission and constant traffic, no peer is ever declared down over
// 20 s: one late heartbeat is not a death.
func TestNoFlappingUnderLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(11)
		defer nw.Close()
		trs := memCluster(t, nw, "n1", "n2", "n3")
		clustertest.WaitUp(t, asTransports(trs))
		ev := watchAll(trs)
		tf := startTraffic(trs)
		defer tf.stop()
		nw.SetDelay(200 * time.Microsecond)
		nw.SetDropRate(0.02)
		time.Sleep(20 * time.Second)
		if n := ev.count(cluster.StateDown); n != 0 {
			t.Fatalf("%d down events under 2%% loss: %v", n, ev.snapshot())
		}
		t.Logf("suspect events: %d", ev.count(cluster.StateSuspect))
	})
}

// TestClockSkewIsHarmless: nodes whose clocks are minutes apart and run at
// rates 1% apart still see each other up and detect a death in time.
func TestClockSkewIsHarmless(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(12)
		defer nw.Close()
		nw.Host("n1").SetClock(-3*time.Minute, 0.99)
		nw.Host("n2").SetClock(5*time.Minute, 1.01)
		trs := memCluster(t, nw, "n1", "n2", "n3")
		clustertest.WaitUp(t, asTransports(trs))
		time.Sleep(5 * time.Second)
		for _, tr := range trs {
			for _, m := range tr.Members() {
				if m.State != cluster.StateUp {
					t.Fatalf("%s sees %s %s under clock skew", tr.LocalID(), m.ID, m.State)
				}
			}
		}
		nw.Blackhole("n3")
		sleepUntil(t, time.Second, func() bool {
			return stateOf(trs[0], "n3") == cluster.StateDown && stateOf(trs[1], "n3") == cluster.StateDown
		}, "skewed nodes missed a death")
	})
}

// TestOneLateHeartbeatIsNotDeath: one heartbeat held up for 250 ms (a
// retransmission, a GC pause on the path) may raise suspicion but must not
// declare the peer down.
func TestOneLateHeartbeatIsNotDeath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(13)
		defer nw.Close()
		trs := memCluster(t, nw, "n1", "n2")
		clustertest.WaitUp(t, asTransports(trs))
		ev := watchAll(trs)
		time.Sleep(1025 * time.Millisecond) // off the 50 ms tick grid
		// For 150 ms, n1's bytes to n2 take 270 ms longer: one or two pings
		// are late, and the longest silence between pongs is 370 ms, past
		// SuspectTimeout (300 ms) but short of DeadTimeout (400 ms). (270,
		// not 250: a pong due exactly on a 50 ms check would race it.)
		nw.SetLinkDelay("n1", "n2", 270*time.Millisecond)
		time.Sleep(150 * time.Millisecond)
		nw.SetLinkDelay("n1", "n2", 0)
		time.Sleep(2 * time.Second)
		if n := ev.count(cluster.StateDown); n != 0 {
			t.Fatalf("one late heartbeat caused %d down events: %v", n, ev.snapshot())
		}
		if ev.count(cluster.StateSuspect) == 0 {
			t.Fatal("the late heartbeat raised no suspicion: the fault did not take effect")
		}
		if stateOf(trs[0], "n2") != cluster.StateUp {
			t.Fatal("peer not up after the late heartbeat")
		}
		t.Logf("events: %v", ev.snapshot())
	})
}

// TestDownPeerGetsNothing: what was queued for a peer that is declared down
// is dropped, Send to it is refused while it is down, Broadcast skips it
// quietly, and when it is back it sees exactly how much it missed.
func TestDownPeerGetsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := clustertest.NewNetwork(21)
		defer nw.Close()
		trs := memCluster(t, nw, "n1", "n2")
		clustertest.WaitUp(t, asTransports(trs))
		var rec recorder
		trs[1].Handle(cluster.ChannelUser, &rec)
		// Up means heartbeats answer; the data connection may still be
		// dialing, so wait until a message has really crossed.
		trs[0].Send("n2", cluster.ChannelUser, []byte("before"))
		sleepUntil(t, 2*time.Second, func() bool { return len(rec.all()) == 1 }, "first message not delivered")

		nw.Blackhole("n2")
		for i := 0; i < 5; i++ { // queued (or held by the network) while n2 is still believed up
			trs[0].Send("n2", cluster.ChannelUser, []byte("lost"))
		}
		sleepUntil(t, 2*time.Second, func() bool { return stateOf(trs[0], "n2") == cluster.StateDown }, "n2 never down")
		if err := trs[0].Send("n2", cluster.ChannelUser, []byte("refused")); !errors.Is(err, cluster.ErrPeerDown) {
			t.Fatalf("Send to a down peer returned %v, want ErrPeerDown", err)
		}
		if err := trs[0].Broadcast(cluster.ChannelUser, []byte("skipped")); err != nil {
			t.Fatalf("Broadcast with a down peer returned %v, want nil", err)
		}
		if s := trs[0].Stats(); s.DroppedPeerDown < 2 {
			t.Fatalf("DroppedPeerDown = %d, want the refused and the skipped message at least", s.DroppedPeerDown)
		}

		nw.Heal()
		sleepUntil(t, 5*time.Second, func() bool { return stateOf(trs[0], "n2") == cluster.StateUp }, "n2 not back up")
		trs[0].Send("n2", cluster.ChannelUser, []byte("after"))
		sleepUntil(t, 2*time.Second, func() bool {
			msgs := rec.all()
			return len(msgs) > 0 && string(msgs[len(msgs)-1].Payload) == "after"
		}, "message after the return not delivered")
		msgs := rec.all()
		if len(msgs) < 2 {
			t.Fatalf("delivered %d messages, want at least before and after", len(msgs))
		}
		last := msgs[len(msgs)-1]
		// Seq 1 "before"; 2-6 lost, 7 refused, 8 skipped; 9 "after". Bytes
		// the network held may have reached n2 before the old connection
		// was closed, so count the gap from the message before "after".
		prev := msgs[len(msgs)-2].Seq
		if last.Seq != 9 || last.Missed != last.Seq-prev-1 || last.Missed == 0 {
			t.Fatalf("after the return: Seq %d Missed %d (previous delivered Seq %d): the gap was not reported", last.Seq, last.Missed, prev)
		}
		for _, m := range msgs {
			if string(m.Payload) == "refused" || string(m.Payload) == "skipped" {
				t.Fatalf("%q reached the peer", m.Payload)
			}
		}
	})
}
