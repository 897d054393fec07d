package dnssrv

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/sipha/sipha/dnssrv/dnssrvtest"
)

// FuzzAnswer feeds arbitrary DNS answers to the whole resolution path
// (exchange checks, CNAME walking, NAPTR/SRV/A processing, the plan and
// the weighted order) through a real in-process server. The first byte
// picks options: bit 0 rewrites answer owners to the asked name, so that
// fuzzed records are used rather than ignored; bit 1 sends the bytes raw.
// A resolution may fail but must not panic or hang.
func FuzzAnswer(f *testing.F) {
	for _, rrs := range [][]string{
		{`f.example. 60 IN NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.f.example.`},
		{`f.example. 60 IN NAPTR 10 10 "" "" "" f.example.`},
		{`f.example. 60 IN SRV 10 60 5060 f.example.`, `f.example. 60 IN SRV 10 0 5060 .`},
		{`f.example. 60 IN CNAME f.example.`},
		{`f.example. 60 IN A 192.0.2.1`, `f.example. 60 IN AAAA 2001:db8::1`},
	} {
		m := new(dns.Msg)
		m.SetQuestion("f.example.", dns.TypeA)
		m.Response = true
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		soa, _ := dns.NewRR("f.example. 60 IN SOA ns. a. 1 2 3 4 5")
		m.Ns = append(m.Ns, soa)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{1}, b...))
		f.Add(append([]byte{0}, b...))
	}
	f.Add([]byte{2, 0, 0, 0x83, 0x80, 0, 1, 0, 1})

	srv, err := dnssrvtest.NewServer()
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		opts, body := data[0], data[1:]
		srv.Handle(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			if opts&2 != 0 || m.Unpack(body) != nil {
				raw := append([]byte(nil), body...)
				if len(raw) >= 2 {
					raw[0], raw[1] = byte(q.Id>>8), byte(q.Id)
				}
				w.Write(raw)
				return
			}
			m.Id, m.Response, m.Question = q.Id, true, q.Question
			if opts&1 != 0 {
				for _, rr := range m.Answer {
					rr.Header().Name = q.Question[0].Name
				}
			}
			if err := w.WriteMsg(m); err != nil {
				w.Write(body)
			}
		})
		r, err := New(Config{Servers: []string{srv.Addr}, Timeout: 50 * time.Millisecond, Attempts: 1,
			Transports: []Transport{UDP, TCP, TLS, WS, WSS, SCTP}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, u := range []string{"sip:f.example", "sips:f.example", "sip:f.example:5060", "sip:f.example;transport=tcp"} {
			ts, err := r.ResolveString(ctx, u)
			if ctx.Err() != nil {
				t.Fatalf("%s: resolution hung", u)
			}
			if err == nil && len(ts) == 0 {
				t.Fatalf("%s: no error and no targets", u)
			}
			for _, tg := range ts {
				if !tg.Addr.IsValid() || tg.Port == 0 || !tg.Transport.valid() {
					t.Fatalf("%s: bad target %+v", u, tg)
				}
			}
		}
	})
}
