package partition_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
)

// Two SIP nodes of one farm, each with the ownership layer (raftowner over
// an in-memory network) and a Router. The node that holds a tenant serves
// its requests; the other forwards them to the owner's SIP address.
func ExampleRouter_Decide() {
	quiet := slog.New(slog.DiscardHandler)
	nw := clustertest.NewNetwork(1)
	defer nw.Close()
	ids := []cluster.NodeID{"n1", "n2"}
	sipAddr := map[cluster.NodeID]string{"n1": "10.0.0.1:5060", "n2": "10.0.0.2:5060"}
	var peers []raftowner.Peer
	for _, id := range ids {
		peers = append(peers, raftowner.Peer{ID: id, Addr: string(id) + ":7946"})
	}
	parts := map[cluster.NodeID]*partition.Partitioner{}
	routers := map[cluster.NodeID]*partition.Router{}
	for _, id := range ids {
		host := nw.Host(string(id))
		tcp, _ := cluster.NewTCP(context.Background(), cluster.Config{ID: id, Listen: string(id) + ":7946",
			Peers: otherPeers(peers, id), Secret: clustertest.Secret, Network: host, Now: host.Now, Logger: quiet})
		defer tcp.Close()
		rt, _ := raftowner.NewStreamTransport(tcp, 0, nil)
		// The WAN profile's 1.5 s lease rides out the stalls of a loaded
		// test machine; the LAN profile's 150 ms once let both leases
		// lapse between the settle check and Decide.
		node, err := raftowner.New(tcp, rt, raftowner.Config{ID: id, Addr: string(id) + ":7946", Peers: peers,
			Profile: raftowner.WAN, Now: host.Now, Logger: quiet})
		if err != nil {
			panic(err)
		}
		defer node.Close()
		p, _ := partition.New(node, nil, partition.Config{})
		defer p.Close() // before the node
		parts[id] = p
		ua, _ := sipgo.NewUA()
		defer ua.Close()
		client, _ := sipgo.NewClient(ua)
		routers[id], _ = partition.NewRouter(p, client, partition.RouterConfig{
			Addr: func(n cluster.NodeID) (string, bool) { a, ok := sipAddr[n]; return a, ok },
		})
	}

	tenants := []string{"acme.example", "initech.example"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, t := range tenants {
		if err := parts["n1"].Add(ctx, t); err != nil {
			panic(err)
		}
	}
	// Wait until each tenant is held by its placed owner and both nodes
	// know it.
	for settled := false; !settled; time.Sleep(10 * time.Millisecond) {
		settled = true
		for _, t := range tenants {
			pl, err := parts["n1"].Placement()
			if err != nil || len(pl.Members()) != len(ids) {
				settled = false
				break
			}
			owner, _ := pl.Owner(t)
			_, held := parts[owner].Held(t)
			c1, _ := parts["n1"].Owner(t)
			c2, _ := parts["n2"].Owner(t)
			settled = settled && held && c1.Node == owner && c2 == c1
		}
		if ctx.Err() != nil {
			panic("no settled placement")
		}
	}

	for _, t := range tenants {
		req := sip.NewRequest(sip.INVITE, sip.Uri{User: "alice", Host: t})
		req.AppendHeader(&sip.ToHeader{Address: req.Recipient})
		for _, id := range ids {
			d, err := routers[id].Decide(req)
			switch {
			case err != nil:
				fmt.Println(t, "at", id, "error:", err)
			case d.Local:
				fmt.Println(t, "at", id, "serve here")
			default:
				fmt.Println(t, "at", id, "forward to", d.Owner, d.Addr)
			}
		}
	}
	// Output:
	// acme.example at n1 serve here
	// acme.example at n2 forward to n1 10.0.0.1:5060
	// initech.example at n1 forward to n2 10.0.0.2:5060
	// initech.example at n2 serve here
}

func otherPeers(all []raftowner.Peer, self cluster.NodeID) []cluster.Peer {
	var out []cluster.Peer
	for _, p := range all {
		if p.ID != self {
			out = append(out, cluster.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	return out
}
