package raftowner_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
)

// A one-node cluster on loopback: the node bootstraps, leads, renews its
// own lease and takes the resource. A real deployment lists three voters
// (or two SIP nodes and an arbiter) in Peers and keeps DataDir.
func Example() {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	tcp, err := cluster.NewTCP(ctx, cluster.Config{ID: "n1", Listen: "127.0.0.1:0", Insecure: true, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tcp.Close()
	rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "raftowner-example")
	defer os.RemoveAll(dir)
	node, err := raftowner.New(tcp, rt, raftowner.Config{ID: "n1", Addr: tcp.Addr(), DataDir: dir,
		Peers: []raftowner.Peer{{ID: "n1", Addr: tcp.Addr()}}, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()

	var m ownership.Manager = node // what blocks see
	events, stop := ownership.WatchChan(m, "vip/")
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.Ensure(ctx, ownership.Spec{Name: ownership.VIPResource("198.51.100.100")}); err != nil {
		fmt.Println(err)
		return
	}
	for e := range events {
		if e.Kind == ownership.Acquired {
			epoch, held := m.Held(e.Resource)
			fmt.Println(e.Resource, "acquired at epoch", e.Claim.Epoch, "held:", held, epoch == e.Claim.Epoch)
			break
		}
	}
	// Output: vip/198.51.100.100 acquired at epoch 1 held: true true
}

func ExampleConfig_Validate() {
	cfg := raftowner.Config{ID: "n1", Peers: []raftowner.Peer{{ID: "n1", Addr: "10.0.0.1:7946"}},
		Lease: time.Second, ReassignDelay: 900 * time.Millisecond}
	fmt.Println(cfg.Validate())
	// Output: raftowner: invalid config: ReassignDelay 900ms < Lease×(1+ClockDrift)+MaxPause = 1.06s
}
