package dnssrvtest_test

import (
	"fmt"

	"github.com/miekg/dns"
	"github.com/sipha/sipha/dnssrv/dnssrvtest"
)

func ExampleNewServer() {
	srv, err := dnssrvtest.NewServer(`_sip._udp.example.com. 60 IN SRV 10 60 5060 sip1.example.com.`)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	m := new(dns.Msg)
	m.SetQuestion("_sip._udp.example.com.", dns.TypeSRV)
	in, err := dns.Exchange(m, srv.Addr)
	if err != nil {
		panic(err)
	}
	fmt.Println(in.Answer[0].(*dns.SRV).Target, srv.Queries())
	// Output: sip1.example.com. 1
}
