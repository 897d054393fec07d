package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Every hostile answer must end in an error, within the configured
// timeouts, without a panic; the context deadline only guards the test.
func TestHostileAnswers(t *testing.T) {
	defer checkNoLeak(t)()
	var loop []string
	for i := range 20 {
		loop = append(loop, fmt.Sprintf("c%d.long.example. 60 IN CNAME c%d.long.example.", i, i+1))
	}
	loop = append(loop, "c20.long.example. 60 IN A 192.0.2.1")
	var huge []string
	for i := range 1000 {
		huge = append(huge, fmt.Sprintf("huge.example. 60 IN A 10.0.%d.%d", i/250, i%250))
	}
	srv := startZone(t, append(append(loop, huge...),
		"a.loop.example. 60 IN CNAME b.loop.example.",
		"b.loop.example. 60 IN CNAME a.loop.example.",
		`x.nloop.example. 60 IN NAPTR 10 10 "" "" "" y.nloop.example.`,
		`y.nloop.example. 60 IN NAPTR 10 10 "" "" "" x.nloop.example.`,
		"ok.example. 60 IN A 192.0.2.7",
	)...)
	defer srv.Close() // before the leak check
	zoneAnswer := func(w dns.ResponseWriter, q *dns.Msg) *dns.Msg { return srv.Answer(q) }
	tests := []struct {
		name    string
		uri     string
		handler func(w dns.ResponseWriter, q *dns.Msg)
		want    error
	}{
		// miekg/dns drops a reply with the wrong ID and keeps waiting for
		// the right one (spoofing resistance), so this ends in a timeout.
		{"wrong ID", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {
			m := zoneAnswer(w, q)
			m.Id = q.Id + 1
			w.WriteMsg(m)
		}, ErrServerFailure},
		{"truncated even over TCP", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {
			m := zoneAnswer(w, q)
			m.Truncated = true
			w.WriteMsg(m)
		}, ErrBadAnswer},
		{"garbage bytes", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {
			b := []byte{byte(q.Id >> 8), byte(q.Id), 0x81, 0x80, 0, 1, 0, 9, 0, 0, 0, 0, 0xff, 0xff}
			w.Write(b)
		}, ErrServerFailure},
		{"silence", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {}, ErrServerFailure},
		{"answer to another question", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {
			q2 := q.Copy()
			q2.Question[0].Name = "evil.example."
			m := srv.Answer(q2)
			m.Id = q.Id
			w.WriteMsg(m)
		}, ErrBadAnswer},
		{"SERVFAIL", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeServerFailure)
			w.WriteMsg(m)
		}, ErrServerFailure},
		{"query flag instead of response", "sip:ok.example:5060", func(w dns.ResponseWriter, q *dns.Msg) {
			m := zoneAnswer(w, q)
			m.Response = false
			w.WriteMsg(m)
		}, ErrServerFailure},
		{"CNAME loop", "sip:a.loop.example:5060", nil, ErrTooDeep},
		{"CNAME loop via NAPTR/SRV/A", "sip:a.loop.example", nil, ErrTooDeep},
		{"CNAME chain too long", "sip:c0.long.example:5060", nil, ErrTooDeep},
		{"NAPTR replacement loop", "sip:x.nloop.example", nil, ErrTooDeep},
		{"huge answer", "sip:huge.example:5060", nil, ErrTooManyRecords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.Handle(tc.handler)
			defer srv.Handle(nil)
			r := newTestResolver(t, srv.Addr, nil, func(c *Config) {
				c.Timeout = 200 * time.Millisecond
				c.Attempts = 2
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ts, err := r.ResolveString(ctx, tc.uri)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", ts, err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("the resolver hung until the test's deadline")
			}
			r.Close()
		})
	}
}

// Records for names the question did not lead to are ignored, so an
// answer cannot plant addresses for other names in the cache.
func TestInjectedRecordsIgnored(t *testing.T) {
	srv := startZone(t, zone...)
	srv.Handle(func(w dns.ResponseWriter, q *dns.Msg) {
		m := srv.Answer(q)
		if strings.HasPrefix(q.Question[0].Name, "aonly.") {
			bogus, _ := dns.NewRR("sip1.example.com. 99999 IN A 6.6.6.6")
			m.Answer = append(m.Answer, bogus)
			m.Extra = append(m.Extra, bogus)
		}
		w.WriteMsg(m)
	})
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.Family = IPv4Only })
	ctx := context.Background()
	if _, err := r.ResolveString(ctx, "sip:aonly.example:5060"); err != nil {
		t.Fatal(err)
	}
	ts, err := r.ResolveString(ctx, "sip:sip1.example.com:5060")
	if err != nil || len(ts) != 1 || ts[0].Addr.String() != "192.0.2.1" {
		t.Fatalf("got %v, %v; want only 192.0.2.1", ts, err)
	}
}

// An SRV set too big for UDP arrives truncated and is asked again over TCP.
func TestTruncatedFallsBackToTCP(t *testing.T) {
	var recs []string
	for i := range 40 {
		host := fmt.Sprintf("a-rather-long-host-name-number-%02d.big.example.", i)
		recs = append(recs,
			fmt.Sprintf("_sip._udp.big.example. 60 IN SRV 10 %d 5060 %s", i, host),
			fmt.Sprintf("%s 60 IN A 192.0.2.%d", host, i+1))
	}
	srv := startZone(t, recs...)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.Family = IPv4Only })
	ts, err := r.ResolveString(context.Background(), "sip:big.example;transport=udp")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 40 {
		t.Fatalf("%d targets, want 40", len(ts))
	}
	if r.Stats().TCPFallbacks == 0 {
		t.Fatal("no TCP fallback counted")
	}
}
