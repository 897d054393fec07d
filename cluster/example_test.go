package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// Two nodes on loopback share a secret; one sends, the other handles the
// message on its channel.
func ExampleNewTCP() {
	ctx := context.Background()
	secret := []byte("a cluster secret of 16+ bytes")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	n1, err := cluster.NewTCP(ctx, cluster.Config{ID: "n1", Listen: "127.0.0.1:0", Secret: secret, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer n1.Close()
	n2, err := cluster.NewTCP(ctx, cluster.Config{ID: "n2", Listen: "127.0.0.1:0", Secret: secret, Logger: quiet,
		Peers: []cluster.Peer{{ID: "n1", Addr: n1.Addr()}}}) // n1 learns n2 when it connects
	if err != nil {
		panic(err)
	}
	defer n2.Close()

	got := make(chan string, 1)
	n1.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(m cluster.Message) {
		got <- fmt.Sprintf("%s sent %q (seq %d)", m.From, m.Payload, m.Seq)
	}))
	if err := n2.Send("n1", cluster.ChannelUser, []byte("hello")); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: n2 sent "hello" (seq 1)
}

// A test of your own code can run the real transport on an in-memory
// network and cut it.
func ExampleTCP_WatchMembers() {
	nw := clustertest.NewNetwork(1)
	defer nw.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(id, peer cluster.NodeID) *cluster.TCP {
		h := nw.Host(string(id))
		tr, err := cluster.NewTCP(context.Background(), cluster.Config{ID: id, Listen: string(id) + ":7946",
			Peers: []cluster.Peer{{ID: peer, Addr: string(peer) + ":7946"}}, Insecure: true,
			Network: h, Now: h.Now, Logger: quiet})
		if err != nil {
			panic(err)
		}
		return tr
	}
	n1, n2 := start("n1", "n2"), start("n2", "n1")
	defer n1.Close()
	defer n2.Close()

	states := make(chan cluster.State, 8)
	stop := n1.WatchMembers(func(e cluster.MemberEvent) { states <- e.State })
	defer stop()
	fmt.Println("n2 is", <-states)
	nw.Blackhole("n2") // n2 vanishes without a trace
	fmt.Println("n2 is", <-states)
	fmt.Println("n2 is", <-states)
	nw.Heal()
	fmt.Println("n2 is", waitFor(states, cluster.StateUp, 5*time.Second))
	// Output:
	// n2 is up
	// n2 is suspect
	// n2 is down
	// n2 is up
}

func waitFor(c <-chan cluster.State, want cluster.State, d time.Duration) cluster.State {
	deadline := time.After(d)
	for {
		select {
		case s := <-c:
			if s == want {
				return s
			}
		case <-deadline:
			return cluster.StateUnknown
		}
	}
}
