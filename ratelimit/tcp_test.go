package ratelimit_test

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ratelimit"
)

// muteTransport is the real transport with a switch that makes the
// limiter above it fall silent, as a hung process (SIGSTOP, a long GC
// pause) does while its kernel still answers TCP: the peers' transport sees
// it up, and only the silence rule can take its share.
type muteTransport struct {
	cluster.Transport
	muted atomic.Bool
}

func (m *muteTransport) Broadcast(ch cluster.Channel, p []byte) error {
	if m.muted.Load() {
		return nil
	}
	return m.Transport.Broadcast(ch, p)
}

// loopbackCluster starts n nodes on real TCP over 127.0.0.1.
func loopbackCluster(t *testing.T, cfg ratelimit.Config, n int) []*node {
	t.Helper()
	lns := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	for _, ln := range lns {
		ln.Close() // NewTCP listens again; a clash fails loudly there
	}
	nodes := make([]*node, n)
	trs := make([]cluster.Transport, n)
	for i := range nodes {
		id := cluster.NodeID("n" + string(rune('1'+i)))
		var peers []cluster.Peer
		for j, a := range addrs {
			if j != i {
				peers = append(peers, cluster.Peer{ID: cluster.NodeID("n" + string(rune('1'+j))), Addr: a})
			}
		}
		tr, err := cluster.NewTCP(t.Context(), cluster.Config{ID: id, Listen: addrs[i], Peers: peers,
			Secret: testSecret, Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		mt := &muteTransport{Transport: tr}
		c.Transport, c.Logger = mt, clustertest.Logger(t)
		rl, err := ratelimit.New(c)
		if err != nil {
			tr.Close()
			t.Fatal(err)
		}
		nodes[i] = &node{id: id, tr: tr, rl: rl, mute: &mt.muted}
		trs[i] = tr
		t.Cleanup(nodes[i].close)
	}
	clustertest.WaitUp(t, trs)
	return nodes
}

// TestAccuracyLoopbackTCP is TestAccuracy's skewed phase and loss of the
// busiest node on real TCP sockets and the real clock, shorter (about 9 s).
// The node hangs (its limiter falls silent, its transport stays up), the
// case that only the silence rule handles; a graceful stop hands its share
// over at once (TestGoodbyeHandsShareOver), and a crash is in TestAccuracy.
//
// Silence is 1 s here, not the default 300 ms: on a shared CI machine
// running the whole module's tests with -race, a process is descheduled
// for hundreds of milliseconds, beyond the pause the default assumes, and
// a peer would be taken for dead. For the same reason the load generator
// itself stalls at times, and a stalled generator offers its calls all at
// once: the 1 s windows holding such a stall (over 25 ms) are left out of
// the band, and counted in the log. Under -race the band is ±15 %
// (ceiling 1.25), without it the issue's ±5 % (ceiling 1.10).
func TestAccuracyLoopbackTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time test; skipped with -short")
	}
	clustertest.CheckLeaks(t)
	cfg := tenantConfig()
	cfg.Silence = time.Second
	nodes := loopbackCluster(t, cfg, 3)
	L := testLimit
	tol, ceiling := 0.05, 1.10
	if raceEnabled {
		tol, ceiling = 0.15, 1.25
	}
	ld := startLoad("tenant-a", nodes, 1.4*L, 0.4*L, 0.2*L)
	defer ld.stop()
	time.Sleep(4 * time.Second)
	nodes[0].mute.Store(true)
	ld.set(0, 0.4*L+0.7*L, 0.2*L+0.7*L)
	kill := ld.at()
	time.Sleep(5 * time.Second)
	end := ld.at()
	settle := cfg.Silence*12/10 + time.Second // T × (1+ε), then a 1 s window
	skewed, out1 := ld.steadyWindows(1500*time.Millisecond, kill)
	after, out2 := ld.steadyWindows(kill+settle, end)
	t.Logf("windows left out for generator stalls: %d and %d", out1, out2)
	if len(skewed) < 5 || len(after) < 5 {
		t.Skipf("the machine is too loaded to measure: the load generator stalled in all but %d and %d windows", len(skewed), len(after))
	}
	checkBandTol(t, "loopback TCP, skewed 70/20/10", skewed, L, tol, ceiling)
	checkBandTol(t, "loopback TCP, survivors (+T(1+ε)+1 s)", after, L, tol, ceiling)
	t.Logf("after the hang, windows starting %v later or more are in ±5 %%", ld.settled(kill, end, L))
	if t.Failed() {
		ld.mu.Lock()
		for i := range ld.nodes {
			t.Logf("n%d admitted per 100 ms: %v", i+1, ld.buckets[i])
		}
		ld.mu.Unlock()
	}
	if all, _ := ld.steadyWindows(time.Second, end); summarize(all, L).max > ceiling {
		t.Errorf("a window admitted %.3f × the limit", summarize(all, L).max)
	}
}
