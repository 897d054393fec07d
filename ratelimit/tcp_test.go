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
			Secret: testSecret, Logger: quietLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		mt := &muteTransport{Transport: tr}
		c.Transport, c.Logger = mt, quietLogger(t)
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
// busiest node on real TCP sockets and the real clock, shorter (about 8 s).
// The node hangs (its limiter falls silent, its transport stays up), the
// case that only the silence rule handles; a graceful stop hands its share
// over at once (TestGoodbyeHandsShareOver), and a crash is in TestAccuracy.
func TestAccuracyLoopbackTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time test; skipped with -short")
	}
	clustertest.CheckLeaks(t)
	nodes := loopbackCluster(t, tenantConfig(), 3)
	L := testLimit
	ld := startLoad("tenant-a", nodes, 1.4*L, 0.4*L, 0.2*L)
	defer ld.stop()
	time.Sleep(4 * time.Second)
	nodes[0].mute.Store(true)
	ld.set(0, 0.4*L+0.7*L, 0.2*L+0.7*L)
	kill := ld.at()
	time.Sleep(3500 * time.Millisecond)
	end := ld.at()
	checkBand(t, "loopback TCP, skewed 70/20/10", ld.windows(1500*time.Millisecond, kill), L)
	checkBand(t, "loopback TCP, survivors (+1 s)", ld.windows(kill+time.Second, end), L)
	t.Logf("after the kill, windows starting %v later or more are in band", ld.settled(kill, end, L))
	if all := summarize(ld.windows(time.Second, end), L); all.max > 1.10 {
		t.Errorf("a window admitted %.3f × the limit", all.max)
	}
}
