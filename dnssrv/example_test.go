package dnssrv_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/sipha/sipha/dnssrv"
	"github.com/sipha/sipha/dnssrv/dnssrvtest"
)

func Example() {
	srv, err := dnssrvtest.NewServer(
		`example.com. 60 IN NAPTR 10 50 "s" "SIP+D2T" "" _sip._tcp.example.com.`,
		`example.com. 60 IN NAPTR 20 50 "s" "SIP+D2U" "" _sip._udp.example.com.`,
		`_sip._tcp.example.com. 60 IN SRV 10 0 5060 sip1.example.com.`,
		`_sip._udp.example.com. 60 IN SRV 10 0 5060 sip1.example.com.`,
		`_sip._udp.example.com. 60 IN SRV 20 0 5060 sip2.example.com.`,
		`sip1.example.com. 60 IN A 192.0.2.1`,
		`sip2.example.com. 60 IN A 192.0.2.2`,
	)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	r, err := dnssrv.New(dnssrv.Config{Servers: []string{srv.Addr}})
	if err != nil {
		panic(err)
	}
	defer r.Close()
	targets, err := r.ResolveString(context.Background(), "sip:example.com")
	if err != nil {
		panic(err)
	}
	for _, t := range targets {
		fmt.Println(t)
	}
	// Output:
	// TCP sip1.example.com 5060 192.0.2.1
	// UDP sip1.example.com 5060 192.0.2.1
	// UDP sip2.example.com 5060 192.0.2.2
}

func ExampleResolver_ResolveKey() {
	srv, _ := dnssrvtest.NewServer(
		`_sip._udp.example.com. 60 IN SRV 10 50 5060 a.example.com.`,
		`_sip._udp.example.com. 60 IN SRV 10 50 5060 b.example.com.`,
		`a.example.com. 60 IN A 192.0.2.1`,
		`b.example.com. 60 IN A 192.0.2.2`,
	)
	defer srv.Close()
	r, _ := dnssrv.New(dnssrv.Config{Servers: []string{srv.Addr}, Rand: rand.New(rand.NewPCG(1, 1))})
	defer r.Close()
	u, _ := dnssrv.ParseURI("sip:example.com;transport=udp")
	// The same key (a hash of Call-ID, CSeq and branch) always gives the
	// same order, so a retransmission follows the original.
	first, _ := r.ResolveKey(context.Background(), u, 42)
	same := true
	for range 100 {
		again, _ := r.ResolveKey(context.Background(), u, 42)
		same = same && again[0] == first[0]
	}
	fmt.Println(len(first), same)
	// Output: 2 true
}

func ExampleIterator() {
	srv, _ := dnssrvtest.NewServer()
	defer srv.Close()
	r, _ := dnssrv.New(dnssrv.Config{Servers: []string{srv.Addr}})
	defer r.Close()
	targets := []dnssrv.Target{
		{Transport: dnssrv.UDP, Host: "a", Port: 5060, Addr: netip.MustParseAddr("192.0.2.1")},
		{Transport: dnssrv.UDP, Host: "b", Port: 5060, Addr: netip.MustParseAddr("192.0.2.2")},
	}
	// The first request finds a dead; the blacklist spares the next one.
	it := r.NewIterator(targets)
	t, _ := it.Next()
	fmt.Println("try", t.Host)
	it.Failed(time.Minute)
	t, _ = it.Next()
	fmt.Println("try", t.Host)
	it.Succeeded()

	t, _ = r.NewIterator(targets).Next()
	fmt.Println("next request tries", t.Host, "first")
	// Output:
	// try a
	// try b
	// next request tries b first
}
