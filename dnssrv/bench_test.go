package dnssrv

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func benchResolver(b testing.TB, clock *fakeClock) (*Resolver, string) {
	srv := startZone(b, zone...)
	r := newTestResolver(b, srv.Addr, clock, nil)
	return r, srv.Addr
}

// The cached path allocates only the result slice (and nothing for
// AppendResolve); this is counted, not timed, so it holds on any machine.
func TestCachedResolveAllocs(t *testing.T) {
	r, _ := benchResolver(t, nil)
	ctx := context.Background()
	u, _ := ParseURI("sip:example.com")
	if _, err := r.Resolve(ctx, u); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { r.Resolve(ctx, u) }); n > 2 {
		t.Fatalf("cached Resolve: %v allocs, want <= 2", n)
	}
	buf := make([]Target, 0, 16)
	if n := testing.AllocsPerRun(1000, func() { r.AppendResolve(ctx, buf[:0], u) }); n != 0 {
		t.Fatalf("cached AppendResolve: %v allocs, want 0", n)
	}
}

// BenchmarkResolveCached: NAPTR → 3 SRV sets → 6 targets, from the cache.
func BenchmarkResolveCached(b *testing.B) {
	r, _ := benchResolver(b, nil)
	ctx := context.Background()
	u, _ := ParseURI("sip:example.com")
	if _, err := r.Resolve(ctx, u); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resolve(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResolveCached(b *testing.B) {
	r, _ := benchResolver(b, nil)
	ctx := context.Background()
	u, _ := ParseURI("sip:example.com")
	buf := make([]Target, 0, 16)
	if _, err := r.AppendResolve(ctx, buf, u); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.AppendResolve(ctx, buf[:0], u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveCachedParallel(b *testing.B) {
	r, _ := benchResolver(b, nil)
	ctx := context.Background()
	u, _ := ParseURI("sip:example.com")
	if _, err := r.Resolve(ctx, u); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Resolve(ctx, u)
		}
	})
}

// BenchmarkResolveUncachedSRV: the same SRV question as the net.Resolver
// baseline, with the clock moved past every TTL each time, so each
// iteration asks SRV and then A and AAAA for its 3 targets over UDP.
func BenchmarkResolveUncachedSRV(b *testing.B) {
	clock := newClock()
	r, _ := benchResolver(b, clock)
	ctx := context.Background()
	u, _ := ParseURI("sip:example.com;transport=udp")
	b.ReportAllocs()
	for b.Loop() {
		clock.Add(time.Hour)
		if _, err := r.Resolve(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupSRVUncached is one SRV query through the record layer
// (singleflight, exchange, answer checks, cache store): the like-for-like
// counterpart of the net.Resolver baseline.
func BenchmarkLookupSRVUncached(b *testing.B) {
	clock := newClock()
	r, _ := benchResolver(b, clock)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		clock.Add(time.Hour)
		if s, err := r.lookup(ctx, "_sip._udp.example.com.", dns.TypeSRV); err != nil || len(s.rrs) != 3 {
			b.Fatal(s, err)
		}
	}
}

// BenchmarkNetResolverLookupSRV is the baseline: Go's resolver (no cache,
// no NAPTR, SRV records only, no addresses) against the same server.
func BenchmarkNetResolverLookupSRV(b *testing.B) {
	_, addr := benchResolver(b, nil)
	nr := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, srvs, err := nr.LookupSRV(ctx, "sip", "udp", "example.com"); err != nil || len(srvs) != 3 {
			b.Fatal(srvs, err)
		}
	}
}
