package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCachePositiveTTL(t *testing.T) {
	srv := startZone(t, zone...)
	clock := newClock()
	r := newTestResolver(t, srv.Addr, clock, nil)
	ctx := context.Background()
	resolve := func() {
		t.Helper()
		if _, err := r.ResolveString(ctx, "sip:nonaptr.example"); err != nil {
			t.Fatal(err)
		}
	}
	resolve()
	q := srv.Queries()
	// The negative answers (NAPTR, _sips._tcp SRV and the two AAAA) live
	// min(SOA TTL 300, MINIMUM 30) = 30s; the SRV and A records live 300s.
	clock.Add(29 * time.Second)
	resolve()
	if srv.Queries() != q {
		t.Fatalf("queries %d -> %d within the TTL", q, srv.Queries())
	}
	clock.Add(2 * time.Second)
	resolve()
	if got := srv.Queries(); got != q+4 {
		t.Fatalf("queries %d -> %d after the negative answers expired; want only those 4 asked again", q, got)
	}
	if s := r.Stats(); s.PlanHits != 1 || s.PlanMisses != 2 {
		t.Fatalf("stats %+v, want 1 hit and 2 misses", s)
	}
}

// RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM).
func TestCacheNegativeSOA(t *testing.T) {
	for _, tc := range []struct {
		soa  string
		live time.Duration
	}{
		{"example. 300 IN SOA ns. admin. 1 3600 600 86400 30", 30 * time.Second},
		{"example. 10 IN SOA ns. admin. 1 3600 600 86400 60", 10 * time.Second},
	} {
		t.Run(tc.live.String(), func(t *testing.T) {
			srv := startZone(t, tc.soa)
			clock := newClock()
			r := newTestResolver(t, srv.Addr, clock, nil)
			ctx := context.Background()
			if _, err := r.ResolveString(ctx, "sip:gone.example"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			q := srv.Queries()
			clock.Add(tc.live - time.Second)
			if _, err := r.ResolveString(ctx, "sip:gone.example"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("cached err = %v", err)
			}
			if srv.Queries() != q {
				t.Fatal("negative answer not cached")
			}
			clock.Add(2 * time.Second)
			r.ResolveString(ctx, "sip:gone.example")
			if srv.Queries() == q {
				t.Fatal("negative answer cached past min(SOA TTL, MINIMUM)")
			}
		})
	}
}

func TestCacheBounded(t *testing.T) {
	var recs []string
	for i := range 20 {
		recs = append(recs, fmt.Sprintf("h%d.example. 300 IN A 192.0.2.%d", i, i+1))
	}
	srv := startZone(t, recs...)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.CacheSize = 5; c.Family = IPv4Only })
	for i := range 20 {
		ts, err := r.ResolveString(context.Background(), fmt.Sprintf("sip:h%d.example:5060", i))
		if err != nil || len(ts) != 1 {
			t.Fatalf("h%d: %v %v", i, ts, err)
		}
	}
	r.recMu.Lock()
	nrec := r.records.len()
	r.recMu.Unlock()
	r.planMu.Lock()
	nplan := r.plans.len()
	r.planMu.Unlock()
	if nrec > 5 || nplan > 5 {
		t.Fatalf("cache sizes %d records, %d plans; bound 5", nrec, nplan)
	}
}

func TestConcurrentLookupsCollapse(t *testing.T) {
	srv := startZone(t, zone...)
	srv.SetDelay(50 * time.Millisecond)
	r := newTestResolver(t, srv.Addr, nil, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.ResolveString(context.Background(), "sip:aonly.example")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// One resolution asks NAPTR, SRV for UDP, TCP and TLS, then A and AAAA.
	if got := srv.Queries(); got != 6 {
		t.Fatalf("32 concurrent resolves sent %d queries, want 6", got)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	srv := startZone(t, "fresh.example. 60 IN A 192.0.2.1")
	clock := newClock()
	r := newTestResolver(t, srv.Addr, clock, func(c *Config) { c.StaleWhileRevalidate = time.Minute; c.Family = IPv4Only })
	ctx := context.Background()
	if ts, err := r.ResolveString(ctx, "sip:fresh.example:5060"); err != nil || ts[0].Addr.String() != "192.0.2.1" {
		t.Fatal(ts, err)
	}
	srv.Reset()
	srv.Add("fresh.example. 60 IN A 192.0.2.2")
	clock.Add(61 * time.Second)
	ts, err := r.ResolveString(ctx, "sip:fresh.example:5060")
	if err != nil || ts[0].Addr.String() != "192.0.2.1" {
		t.Fatalf("expired entry not served stale: %v %v", ts, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts, err = r.ResolveString(ctx, "sip:fresh.example:5060")
		if err == nil && ts[0].Addr.String() == "192.0.2.2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("background refresh never landed: %v %v", ts, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := r.Stats(); s.StaleServed == 0 || s.Refreshes == 0 {
		t.Fatalf("stats %+v", s)
	}
	// Past the stale window the resolver waits for fresh data.
	srv.Reset()
	srv.Add("fresh.example. 60 IN A 192.0.2.3")
	clock.Add(200 * time.Second)
	ts, err = r.ResolveString(ctx, "sip:fresh.example:5060")
	if err != nil || ts[0].Addr.String() != "192.0.2.3" {
		t.Fatalf("beyond the stale window: %v %v", ts, err)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	defer checkNoLeak(t)()
	srv := startZone(t, "slow.example. 60 IN A 192.0.2.1")
	srv.SetDelay(100 * time.Millisecond)
	r := newTestResolver(t, srv.Addr, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	// The caller gives up; the shared query goes on until Close.
	if _, err := r.ResolveString(ctx, "sip:slow.example:5060"); err == nil {
		t.Fatal("want a context error")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := r.ResolveString(context.Background(), "sip:other.example:5060"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	srv.Close()
}
