package usrloc

import (
	"fmt"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

var testSecret = []byte("usrloc-test-secret-0123456789")

// node is one usrloc node: transport, store and replicator.
type node struct {
	id cluster.NodeID
	tr *cluster.TCP
	st *Store
	rp *Replicator
}

func (n *node) close() {
	n.rp.Close()
	n.tr.Close()
	n.st.Close()
}

// startNode starts node i of ids on the in-memory network, knowing the
// others. A node a peer does not know yet gets none of the peer's
// broadcasts until it connects: use ids[:i+1] to start a late joiner that
// must sync.
func startNode(t testing.TB, nw *clustertest.Network, ids []cluster.NodeID, i int, rcfg ReplicatorConfig, opts ...func(*cluster.Config)) *node {
	t.Helper()
	return startNodeStore(t, nw, ids, i, Config{}, rcfg, opts...)
}

// startNodeStore is startNode with a store configuration (Node, Now and
// Logger are set here).
func startNodeStore(t testing.TB, nw *clustertest.Network, ids []cluster.NodeID, i int, scfg Config, rcfg ReplicatorConfig, opts ...func(*cluster.Config)) *node {
	t.Helper()
	return startNodeWrapped(t, nw, ids, i, scfg, rcfg, nil, opts...)
}

// startNodeWrapped is startNodeStore with the replicator on wrap(transport)
// when wrap is set.
func startNodeWrapped(t testing.TB, nw *clustertest.Network, ids []cluster.NodeID, i int, scfg Config, rcfg ReplicatorConfig, wrap func(cluster.Transport) cluster.Transport, opts ...func(*cluster.Config)) *node {
	t.Helper()
	var peers []cluster.Peer
	for j, other := range ids {
		if j != i {
			peers = append(peers, cluster.Peer{ID: other, Addr: string(other) + ":7946"})
		}
	}
	host := nw.Host(string(ids[i]))
	ccfg := cluster.Config{ID: ids[i], Listen: string(ids[i]) + ":7946",
		Peers: peers, Secret: testSecret, Network: host, Now: host.Now, Logger: clustertest.Logger(t)}
	for _, o := range opts {
		o(&ccfg)
	}
	tr, err := cluster.NewTCP(t.Context(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg.Node, scfg.Now, scfg.Logger = ids[i], host.Now, clustertest.Logger(t)
	st, err := New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	rcfg.Now = host.Now
	rcfg.Logger = clustertest.Logger(t).With("node", ids[i])
	var rtr cluster.Transport = tr
	if wrap != nil {
		rtr = wrap(tr)
	}
	rp, err := NewReplicator(st, rtr, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{id: ids[i], tr: tr, st: st, rp: rp}
	t.Cleanup(n.close)
	return n
}

func nodeIDs(n int) []cluster.NodeID {
	ids := make([]cluster.NodeID, n)
	for i := range ids {
		ids[i] = cluster.NodeID(fmt.Sprintf("n%d", i+1))
	}
	return ids
}

// digestOf is the store's whole digest: equal digests mean equal stores.
func digestOf(s *Store) [nBuckets]bucketSum {
	var d [nBuckets]bucketSum
	s.digests(&d)
	return d
}

func converged(nodes ...*node) bool {
	d := digestOf(nodes[0].st)
	for _, n := range nodes[1:] {
		if digestOf(n.st) != d {
			return false
		}
	}
	return true
}

func waitSynced(t testing.TB, n *node, limit time.Duration) {
	t.Helper()
	select {
	case <-n.rp.Synced():
	case <-time.After(limit):
		t.Fatalf("%s not synced after %v: %+v", n.id, limit, n.rp.Stats())
	}
}

// registerN registers users [from, to) on n, one contact each.
func registerN(t testing.TB, n *node, from, to int, tag string) {
	t.Helper()
	for i := from; i < to; i++ {
		c := contact(fmt.Sprintf("sip:u%d@192.0.2.%d:%d", i, i%250, 5060+i%1000), time.Hour)
		c.UserAgent = "phone-" + tag
		if _, err := n.st.Register(reg(fmt.Sprintf("sip:user%d@example.com", i), "cid-"+tag+fmt.Sprint(i), 1, c), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// smallQueues makes a peer's send queue overflow after a few messages, so
// a partition loses messages (a gap) instead of holding them.
func smallQueues(c *cluster.Config) {
	c.MaxMessageSize = 64 << 10
	c.QueueBytes = 80 << 10
}
