package clustertest

import (
	"log/slog"
	"os"
	"testing"

	"github.com/sipha/sipha/cluster"
)

// Port is the cluster port StartTCP gives every node.
const Port = "7946"

// Secret is the cluster secret StartTCP gives every node.
var Secret = []byte("clustertest-cluster-secret-0123")

// Logger returns a logger that writes to t's log when the tests run with
// -v (at debug level when SIPHA_DEBUG is set) and discards otherwise.
func Logger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	level := slog.LevelInfo
	if os.Getenv("SIPHA_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: level}))
}

type testLog struct{ t testing.TB }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

// StartTCP starts the production TCP transport for node ids[i] on its host
// of nw (the host is named after the node, the port is Port), listing every
// other node of ids as a peer, with Secret, the host's clock and Logger(t).
// tweak, when set, adjusts the configuration first. The transport is closed
// when the test ends.
func StartTCP(t testing.TB, nw *Network, ids []cluster.NodeID, i int, tweak func(*cluster.Config)) *cluster.TCP {
	t.Helper()
	var peers []cluster.Peer
	for j, other := range ids {
		if j != i {
			peers = append(peers, cluster.Peer{ID: other, Addr: string(other) + ":" + Port})
		}
	}
	host := nw.Host(string(ids[i]))
	cfg := cluster.Config{ID: ids[i], Listen: string(ids[i]) + ":" + Port, Peers: peers,
		Secret: Secret, Network: host, Now: host.Now, Logger: Logger(t)}
	if tweak != nil {
		tweak(&cfg)
	}
	tr, err := cluster.NewTCP(t.Context(), cfg)
	if err != nil {
		t.Fatalf("clustertest: start %s: %v", ids[i], err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}
