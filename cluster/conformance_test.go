package cluster_test

import (
	"context"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

var testSecret = []byte("sipha-test-secret-0123456789")

// startTCP starts one TCP transport per ID on net, each listing the others as
// peers. Addresses are fixed up front so every node can be told every peer.
func startTCP(t *testing.T, ids []cluster.NodeID, network cluster.Network, addr func(i int) string, tweak func(*cluster.Config)) []*cluster.TCP {
	t.Helper()
	out := make([]*cluster.TCP, len(ids))
	for i, id := range ids {
		var peers []cluster.Peer
		for j, other := range ids {
			if j != i {
				peers = append(peers, cluster.Peer{ID: other, Addr: addr(j)})
			}
		}
		cfg := cluster.Config{ID: id, Listen: addr(i), Peers: peers, Secret: testSecret, Network: network, Logger: clustertest.Logger(t)}
		if tweak != nil {
			tweak(&cfg)
		}
		tr, err := cluster.NewTCP(context.Background(), cfg)
		if err != nil {
			t.Fatalf("NewTCP %s: %v", id, err)
		}
		t.Cleanup(func() { tr.Close() })
		out[i] = tr
	}
	return out
}

func asTransports(trs []*cluster.TCP) []cluster.Transport {
	out := make([]cluster.Transport, len(trs))
	for i, tr := range trs {
		out[i] = tr
	}
	return out
}

func TestTCPConformanceLoopback(t *testing.T) {
	clustertest.RunTransport(t, func(t *testing.T, ids []cluster.NodeID) []cluster.Transport {
		clustertest.CheckLeaks(t)
		addrs := freeLoopbackAddrs(t, len(ids))
		return asTransports(startTCP(t, ids, nil, func(i int) string { return addrs[i] }, nil))
	})
}
