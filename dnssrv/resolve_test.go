package dnssrv

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestResolveRFC3263Branches(t *testing.T) {
	srv := startZone(t, zone...)
	ctx := context.Background()
	tests := []struct {
		name, uri string
		mod       func(*Config)
		want      []string // exact lines; a "|" separates lines whose order is weighted-random
		err       error
	}{
		{name: "NAPTR order, SIPS/SIP filtered by support, weighted UDP then backup",
			uri: "sip:example.com", mod: func(c *Config) { c.Family = IPv4Only },
			want: []string{
				"TLS tls1.example.com 5061 192.0.2.10",
				"TCP tcp1.example.com 5060 192.0.2.11",
				"UDP sip1.example.com 5060 192.0.2.1|UDP sip2.example.com 5070 192.0.2.2",
				"UDP sip2.example.com 5070 192.0.2.2|UDP sip1.example.com 5060 192.0.2.1",
				"UDP backup.example.com 5060 192.0.2.9",
			}},
		{name: "SIPS URI keeps only SIPS services", uri: "sips:example.com",
			want: []string{"TLS tls1.example.com 5061 192.0.2.10"}},
		{name: "WS when the client supports it, by NAPTR preference", uri: "sip:example.com",
			mod: func(c *Config) { c.Transports = []Transport{WS, TCP} },
			want: []string{
				"WS ws1.example.com 8080 192.0.2.12",
				"TCP tcp1.example.com 5060 192.0.2.11",
			}},
		{name: "IgnoreNAPTR uses SRV in client order", uri: "sip:example.com",
			mod: func(c *Config) { c.IgnoreNAPTR = true; c.Transports = []Transport{TCP, TLS} },
			want: []string{
				"TCP tcp1.example.com 5060 192.0.2.11",
				"TLS tls1.example.com 5061 192.0.2.10",
			}},
		{name: "transport param: SRV for that transport only", uri: "sip:example.com;transport=tcp",
			want: []string{"TCP tcp1.example.com 5060 192.0.2.11"}},
		{name: "sips with transport=tcp is TLS", uri: "sips:example.com;transport=tcp",
			want: []string{"TLS tls1.example.com 5061 192.0.2.10"}},
		{name: "explicit port: A only, UDP", uri: "sip:example.com:5080",
			want: []string{"UDP example.com 5080 192.0.2.100"}},
		{name: "explicit port sips: TLS", uri: "sips:example.com:5081",
			want: []string{"TLS example.com 5081 192.0.2.100"}},
		{name: "numeric IPv4", uri: "sip:192.0.2.55",
			want: []string{"UDP 192.0.2.55 5060 192.0.2.55"}},
		{name: "numeric sips", uri: "sips:192.0.2.55",
			want: []string{"TLS 192.0.2.55 5061 192.0.2.55"}},
		{name: "numeric IPv6 with port and transport", uri: "sip:[2001:db8::1]:5070;transport=tcp",
			want: []string{"TCP [2001:db8::1] 5070 2001:db8::1"}},
		{name: "no NAPTR: SRV per supported transport", uri: "sip:nonaptr.example",
			want: []string{
				"UDP u.nonaptr.example 5060 198.51.100.1",
				"TCP t.nonaptr.example 5062 198.51.100.2",
			}},
		{name: "no NAPTR, no SRV: A then AAAA, default port", uri: "sip:aonly.example",
			want: []string{"UDP aonly.example 5060 198.51.100.20", "UDP aonly.example 5060 2001:db8::20"}},
		{name: "PreferIPv6", uri: "sip:aonly.example", mod: func(c *Config) { c.Family = PreferIPv6 },
			want: []string{"UDP aonly.example 5060 2001:db8::20", "UDP aonly.example 5060 198.51.100.20"}},
		{name: "IPv4Only", uri: "sip:aonly.example", mod: func(c *Config) { c.Family = IPv4Only },
			want: []string{"UDP aonly.example 5060 198.51.100.20"}},
		{name: "IPv6Only", uri: "sip:aonly.example", mod: func(c *Config) { c.Family = IPv6Only },
			want: []string{"UDP aonly.example 5060 2001:db8::20"}},
		{name: "sips with no NAPTR or SRV: TLS on 5061", uri: "sips:aonly.example", mod: func(c *Config) { c.Family = IPv4Only },
			want: []string{"TLS aonly.example 5061 198.51.100.20"}},
		{name: "SRV target . means unavailable, no A fallback", uri: "sip:dead.example", err: ErrServiceUnavailable},
		{name: "SRV . for an explicit transport", uri: "sip:dead.example;transport=tcp", err: ErrServiceUnavailable},
		{name: "SRV . for one NAPTR service, the next still used", uri: "sip:half.example",
			want: []string{"TCP t.half.example 5060 203.0.113.9"}},
		{name: "non-terminal NAPTR", uri: "sip:chain.example",
			want: []string{"UDP host.next.example 5066 203.0.113.6"}},
		{name: "CNAME followed", uri: "sip:alias.example:5060", mod: func(c *Config) { c.Family = IPv4Only },
			want: []string{"UDP alias.example 5060 192.0.2.1"}},
		{name: "NAPTR only for an unsupported transport falls back to A", uri: "sip:sctp.example",
			mod:  func(c *Config) { c.Family = IPv4Only },
			want: []string{"UDP sctp.example 5060 203.0.113.8"}},
		{name: "SCTP when supported", uri: "sip:sctp.example", mod: func(c *Config) { c.Transports = []Transport{SCTP} },
			want: []string{"SCTP s.sctp.example 5060 203.0.113.7"}},
		{name: "no such host", uri: "sip:nxdomain.example", err: ErrNotFound},
		{name: "unsupported transport param", uri: "sip:example.com;transport=sctp", err: ErrUnsupported},
		{name: "sips over udp", uri: "sips:example.com;transport=udp", err: ErrBadURI},
		{name: "unknown transport", uri: "sip:example.com;transport=carrier-pigeon", err: ErrUnknownTransport},
		{name: "not sip", uri: "tel:+15551234", err: ErrBadURI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestResolver(t, srv.Addr, nil, tc.mod)
			got, err := r.ResolveString(ctx, tc.uri)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v; targets:\n%s", err, tc.err, lines(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTargets(t, got, tc.want)
		})
	}
}

func checkTargets(t *testing.T, got []Target, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d targets, want %d:\n%s", len(got), len(want), lines(got))
	}
	for i, w := range want {
		if !slices.Contains(strings.Split(w, "|"), got[i].String()) {
			t.Fatalf("target %d = %q, want one of %q; all:\n%s", i, got[i], w, lines(got))
		}
	}
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			if got[i] == got[j] {
				t.Fatalf("target %v twice", got[i])
			}
		}
	}
}

func TestResolveWeightedOrderVaries(t *testing.T) {
	srv := startZone(t, zone...)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.Transports = []Transport{UDP}; c.Family = IPv4Only })
	firsts := map[string]int{}
	for range 200 {
		ts, err := r.ResolveString(context.Background(), "sip:example.com")
		if err != nil {
			t.Fatal(err)
		}
		firsts[ts[0].Host]++
		if ts[2].Host != "backup.example.com" {
			t.Fatalf("priority 20 not last: %s", lines(ts))
		}
	}
	if firsts["sip1.example.com"] == 0 || firsts["sip2.example.com"] == 0 {
		t.Fatalf("weighted order never varied: %v", firsts)
	}
}

func TestResolveKeyDeterministic(t *testing.T) {
	srv := startZone(t, zone...)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.Transports = []Transport{UDP}; c.Family = IPv4Only })
	u, _ := ParseURI("sip:example.com")
	ctx := context.Background()
	orders := map[string]bool{}
	for key := uint64(0); key < 64; key++ {
		first, err := r.ResolveKey(ctx, u, key)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			again, _ := r.ResolveKey(ctx, u, key)
			if lines(again) != lines(first) {
				t.Fatalf("key %d: order changed:\n%s\nvs\n%s", key, lines(first), lines(again))
			}
		}
		orders[lines(first)] = true
	}
	if len(orders) < 2 {
		t.Fatalf("64 keys gave %d orders; the key does not drive the draw", len(orders))
	}
}

func TestAppendResolveReusesSlice(t *testing.T) {
	srv := startZone(t, zone...)
	r := newTestResolver(t, srv.Addr, nil, nil)
	u, _ := ParseURI("sip:nonaptr.example")
	buf := make([]Target, 0, 8)
	got, err := r.AppendResolve(context.Background(), buf, u)
	if err != nil || len(got) != 2 || &got[0] != &buf[:1][0] {
		t.Fatalf("AppendResolve = %v, %v; want 2 targets in the given buffer", got, err)
	}
}
