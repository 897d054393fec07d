package partition_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/partition"
)

// Three FreeSWITCH boxes and a spare: each tenant has an owner, then the
// spare, then the other boxes. When its owner fails, the tenant goes to the
// spare; nothing else moves.
func ExampleBuild() {
	members := []partition.Member{{ID: "fs1"}, {ID: "fs2"}, {ID: "fs3"}, {ID: "spare", Role: partition.Spare}}
	tenants := []string{"acme.example", "globex.example", "initech.example"}
	p, err := partition.Build(members, tenants, partition.Options{})
	if err != nil {
		panic(err)
	}
	for _, t := range tenants {
		fmt.Println(t, p.Rank(t))
	}
	members[1].Down = true // fs2 failed
	p, _ = partition.Build(members, tenants, partition.Options{})
	for _, t := range tenants {
		o, _ := p.Owner(t)
		fmt.Println(t, "now on", o)
	}
	// Output:
	// acme.example [fs3 spare fs1 fs2]
	// globex.example [fs1 spare fs2 fs3]
	// initech.example [fs2 spare fs3 fs1]
	// acme.example now on fs3
	// globex.example now on fs1
	// initech.example now on spare
}

// A sipgo proxy that serves the tenants this node holds and answers 404 for
// tenants nobody registered. With a cluster manager (raftowner) instead of
// ownership.Single, requests for tenants held elsewhere are proxied to
// their owner.
func ExampleRouter() {
	m := ownership.NewSingle("n1")
	defer m.Close()
	p, _ := partition.New(m, partition.MemberSourceFunc(func() []partition.Member {
		return []partition.Member{{ID: "n1"}}
	}), partition.Config{})
	defer p.Close()
	ctx := context.Background()
	if err := p.Add(ctx, "acme.example"); err != nil {
		panic(err)
	}

	conn, _ := net.ListenPacket("udp", "127.0.0.1:0")
	addr := conn.LocalAddr().String()
	ua, _ := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"))
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	client, _ := sipgo.NewClient(ua, sipgo.WithClientAddr(addr))
	router, _ := partition.NewRouter(p, client, partition.RouterConfig{
		Addr: func(id cluster.NodeID) (string, bool) { return addr, id == "n1" },
	})
	srv.OnMessage(router.Middleware(func(req *sip.Request, tx sip.ServerTransaction) {
		key, _ := partition.ToDomain(req)
		epoch, _ := p.Held(key)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Epoch", fmt.Sprint(epoch)))
		tx.Respond(res)
	}))
	go srv.ServeUDP(conn)
	defer conn.Close()

	// A phone on its own socket.
	pconn, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pconn.Close()
	pua, _ := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"))
	defer pua.Close()
	go pua.TransportLayer().ServeUDP(pconn)
	phone, _ := sipgo.NewClient(pua, sipgo.WithClientAddr(pconn.LocalAddr().String()))
	for _, domain := range []string{"acme.example", "unknown.example"} {
		req := sip.NewRequest(sip.MESSAGE, sip.Uri{User: "alice", Host: domain})
		req.SetDestination(addr)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := phone.Do(ctx, req)
		cancel()
		if err != nil {
			fmt.Println(domain, err)
			continue
		}
		fmt.Println(domain, res.StatusCode, res.Reason, header(res, "X-Epoch"))
	}
	// Output:
	// acme.example 200 OK 1
	// unknown.example 404 Not Found (unknown tenant)
}
