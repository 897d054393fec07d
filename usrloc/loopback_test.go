package usrloc

import (
	"net"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// loopbackNodesB starts n replicating nodes on loopback TCP (no SIP).
func loopbackNodesB(tb testing.TB, n int) ([]*lbNode, []string) {
	tb.Helper()
	ids := nodeIDs(n)
	addrs := clustertest.LoopbackAddrs(tb, n)
	var out []*lbNode
	var trs []cluster.Transport
	for i, id := range ids {
		var peers []cluster.Peer
		for j := range ids {
			if j != i {
				peers = append(peers, cluster.Peer{ID: ids[j], Addr: addrs[j]})
			}
		}
		nd := startLoopback(tb, id, addrs[i], peers, ReplicatorConfig{NoJoin: true})
		out = append(out, nd)
		trs = append(trs, nd.tr)
	}
	if n > 1 {
		clustertest.WaitUp(tb, trs)
	}
	return out, addrs
}

// lbNode is a node on loopback TCP with its cluster address.
type lbNode struct {
	*node
	addr string
}

func startLoopback(tb testing.TB, id cluster.NodeID, addr string, peers []cluster.Peer, rcfg ReplicatorConfig) *lbNode {
	tb.Helper()
	tr, err := cluster.NewTCP(tb.Context(), cluster.Config{ID: id, Listen: addr, Peers: peers, Secret: testSecret, Logger: clustertest.Logger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := New(Config{Node: id, Logger: clustertest.Logger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	rcfg.Logger = clustertest.Logger(tb)
	rp, err := NewReplicator(st, tr, rcfg)
	if err != nil {
		tb.Fatal(err)
	}
	nd := &lbNode{node: &node{id: id, tr: tr, st: st, rp: rp}, addr: addr}
	tb.Cleanup(nd.close)
	return nd
}

// joinLoopback starts a node that knows only donor and must sync from it.
func joinLoopback(tb testing.TB, id, donor cluster.NodeID, donorAddr string) *lbNode {
	return startLoopback(tb, id, clustertest.LoopbackAddrs(tb, 1)[0], []cluster.Peer{{ID: donor, Addr: donorAddr}}, ReplicatorConfig{})
}

// loopbackNodes starts n nodes on real loopback TCP, each with a store, a
// replicator and a registrar behind a real sipgo UDP server. It returns
// the nodes and their SIP addresses.
func loopbackNodes(t *testing.T, n int, rcfg RegistrarConfig) ([]*node, []string) {
	t.Helper()
	ids := nodeIDs(n)
	addrs := make([]string, n)
	var lns []net.Listener
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs[i] = ln.Addr().String()
	}
	for _, ln := range lns {
		ln.Close()
	}
	var nodes []*node
	var sips []string
	var trs []cluster.Transport
	for i, id := range ids {
		var peers []cluster.Peer
		for j := range ids {
			if j != i {
				peers = append(peers, cluster.Peer{ID: ids[j], Addr: addrs[j]})
			}
		}
		tr, err := cluster.NewTCP(t.Context(), cluster.Config{ID: id, Listen: addrs[i], Peers: peers, Secret: testSecret, Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		st, err := New(Config{Node: id, Logger: clustertest.Logger(t), ExpiryResolution: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		rp, err := NewReplicator(st, tr, ReplicatorConfig{NoJoin: true, Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		nd := &node{id: id, tr: tr, st: st, rp: rp}
		t.Cleanup(nd.close)
		cfg := rcfg
		cfg.Logger = clustertest.Logger(t)
		reg, err := NewRegistrar(st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, nd)
		sips = append(sips, sipServer(t, reg.Handle))
		trs = append(trs, tr)
	}
	clustertest.WaitUp(t, trs)
	return nodes, sips
}

// TestLoopbackRegisterOnALookupOnB: real sipgo UAs register through node A
// over UDP; node B, over real loopback TCP replication, knows the binding,
// its un-registration, its expiry and a "Contact: *".
func TestLoopbackRegisterOnALookupOnB(t *testing.T) {
	clustertest.CheckLeaks(t)
	nodes, sips := loopbackNodes(t, 2, RegistrarConfig{MinExpires: time.Second, DefaultExpires: time.Hour})
	a, b := nodes[0], nodes[1]
	ua := newTestUA(t, sips[0])
	aor := "sip:alice@example.com"
	if res := ua.register(aor, []string{"<sip:alice@192.0.2.1:5060>", "<sip:alice@192.0.2.2:5060>;expires=1"}); res.StatusCode != 200 {
		t.Fatalf("REGISTER on A: %d", res.StatusCode)
	}
	clustertest.Eventually(t, 2*time.Second, func() bool { return len(b.st.Lookup(aor, nil)) == 2 }, "B did not learn the bindings")
	got := b.st.Lookup(aor, nil)
	if got[0].Node != "n1" || got[0].Socket != "udp:"+sips[0] || got[0].UserAgent != "testphone/1.0" {
		t.Fatalf("B's binding: %+v", got[0])
	}
	// The 1 s binding expires on B by itself.
	clustertest.Eventually(t, 3*time.Second, func() bool { return len(b.st.Lookup(aor, nil)) == 1 }, "expiry on B")

	// A fetch on B's registrar lists what A registered.
	uaB := newTestUA(t, sips[1])
	if res := uaB.register(aor, nil); len(resContacts(res)) != 1 {
		t.Fatalf("fetch on B: %v", resContacts(res))
	}
	// Un-register on A; B follows.
	if res := ua.register(aor, []string{"<sip:alice@192.0.2.1:5060>;expires=0"}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	clustertest.Eventually(t, 2*time.Second, func() bool { return len(b.st.Lookup(aor, nil)) == 0 }, "un-register not replicated")

	// Contact: * on B removes what A registered, on A too.
	ua.register(aor, []string{"<sip:alice@192.0.2.3:5060>", "<sip:alice@192.0.2.4:5060>"})
	clustertest.Eventually(t, 2*time.Second, func() bool { return len(b.st.Lookup(aor, nil)) == 2 }, "B missing new bindings")
	if res := uaB.register(aor, []string{"*"}, "Expires: 0"); res.StatusCode != 200 {
		t.Fatalf("Contact * on B: %d", res.StatusCode)
	}
	clustertest.Eventually(t, 2*time.Second, func() bool { return len(a.st.Lookup(aor, nil)) == 0 }, "Contact * not replicated to A")
	clustertest.Eventually(t, 2*time.Second, func() bool { return converged(a, b) }, "stores differ")
}
