package vip_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/vip"
)

// A single node (ownership.Single owns everything) with a function backend
// that prints what a cloud API or the kernel would be asked to do.
func Example() {
	own := ownership.NewSingle("sip1")
	defer own.Close()
	adds := 0
	be := vip.FuncBackend{
		AddFunc: func(_ context.Context, v vip.VIP, life time.Duration) error {
			if adds++; adds == 1 { // later calls renew the lifetime
				fmt.Println("add", v.Prefix, "valid for", life)
			}
			return nil
		},
		RemoveFunc:   func(_ context.Context, v vip.VIP) error { fmt.Println("remove", v.Prefix); return nil },
		AnnounceFunc: func(_ context.Context, v vip.VIP) error { fmt.Println("gratuitous ARP", v.Prefix.Addr()); return nil },
	}
	up := make(chan vip.Change, 1)
	m, err := vip.New(context.Background(), own, be, vip.Config{
		VIPs: []vip.VIP{{Prefix: netip.MustParsePrefix("198.51.100.100/24"), Interface: "eth0"}},
		Hook: func(c vip.Change) {
			fmt.Println("hook: up =", c.Up, "epoch", c.Epoch)
			if c.Up {
				up <- c
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-up
	m.Close()
	// Output:
	// remove 198.51.100.100/24
	// add 198.51.100.100/24 valid for 2s
	// gratuitous ARP 198.51.100.100
	// gratuitous ARP 198.51.100.100
	// gratuitous ARP 198.51.100.100
	// gratuitous ARP 198.51.100.100
	// gratuitous ARP 198.51.100.100
	// hook: up = true epoch 1
	// remove 198.51.100.100/24
	// hook: up = false epoch 1
}

// A VIP pair with an arbiter: two SIP nodes and a Raft-only arbiter
// (examples/arbiter in production) on loopback. The VIP prefers sip1;
// when sip1 fails, sip2 takes it after sip1 has let it go.
func Example_pairWithArbiter() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)
	ids := []cluster.NodeID{"sip1", "sip2", "arb"}
	var peers []raftowner.Peer
	for _, id := range ids {
		peers = append(peers, raftowner.Peer{ID: id, Addr: freeLoopbackAddr()})
	}
	changes := make(chan string, 64)
	nodes := map[cluster.NodeID]*raftowner.Node{}
	mgrs := map[cluster.NodeID]*vip.Manager{}
	for _, p := range peers {
		var cpeers []cluster.Peer
		for _, q := range peers {
			if q.ID != p.ID {
				cpeers = append(cpeers, cluster.Peer{ID: q.ID, Addr: q.Addr})
			}
		}
		tcp, err := cluster.NewTCP(ctx, cluster.Config{ID: p.ID, Listen: p.Addr, Peers: cpeers,
			Secret: []byte("example-cluster-secret-0123456789"), Logger: quiet})
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
		role := raftowner.RoleNode
		if p.ID == "arb" {
			role = raftowner.RoleArbiter
		}
		n, err := raftowner.New(tcp, rt, raftowner.Config{ID: p.ID, Addr: p.Addr, Role: role, Peers: peers, Logger: quiet})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer n.Close()
		nodes[p.ID] = n
	}
	for _, id := range ids[:2] {
		be := vip.FuncBackend{} // the kernel's part is vip.NewNetlink()
		m, err := vip.New(ctx, nodes[id], be, vip.Config{
			VIPs: []vip.VIP{{Prefix: netip.MustParsePrefix("198.51.100.100/24"), Interface: "eth0",
				Candidates: []cluster.NodeID{"sip1", "sip2"}, Policy: ownership.Preferred}},
			Hook: func(c vip.Change) {
				changes <- fmt.Sprintf("%s up=%v", id, c.Up)
			},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer m.Close()
		mgrs[id] = m
	}
	await := func(want string) {
		for {
			select {
			case c := <-changes:
				if c == want {
					fmt.Println(c)
					return
				}
			case <-ctx.Done():
				fmt.Println("gave up waiting for", want)
				return
			}
		}
	}
	await("sip1 up=true")
	nodes["sip1"].Close() // sip1's ownership node dies: its lease ends at once
	await("sip1 up=false")
	await("sip2 up=true")
	// Output:
	// sip1 up=true
	// sip1 up=false
	// sip2 up=true
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
