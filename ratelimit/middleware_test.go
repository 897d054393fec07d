package ratelimit_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ratelimit"
)

// TestMiddlewareOverUDP: real sipgo UAs over loopback UDP. Tenant a may
// place 3 calls at once (rate 0.1/s): the 4th INVITE gets 503 with
// Retry-After and never reaches the handler; tenant b is not affected;
// in-dialog requests of tenant a still get through.
func TestMiddlewareOverUDP(t *testing.T) {
	clustertest.CheckLeaks(t)
	lim := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 0.1, Burst: 3}})
	var rejected atomic.Int64
	mw, err := ratelimit.Middleware(lim, ratelimit.MiddlewareConfig{
		Pipe:     ratelimit.FromHost,
		OnReject: func(req *sip.Request, pipe string) { rejected.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startSIPServer(t, mw)
	c := newSIPClient(t)

	for i := 1; i <= 4; i++ {
		res := call(t, c, srv.port, sip.INVITE, "a.example", "")
		want := 486
		if i == 4 {
			want = 503
		}
		if res.StatusCode != want {
			t.Fatalf("INVITE %d of tenant a: %d, want %d", i, res.StatusCode, want)
		}
		if i == 4 {
			if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "1" {
				t.Fatalf("503 without Retry-After: 1 (%v)", h)
			}
		}
	}
	if res := call(t, c, srv.port, sip.INVITE, "b.example", ""); res.StatusCode != 486 {
		t.Fatalf("tenant b's INVITE: %d, want 486 (admitted)", res.StatusCode)
	}
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.BYE} {
		if res := call(t, c, srv.port, m, "a.example", "remote-tag"); res.StatusCode != 486 {
			t.Fatalf("in-dialog %s of tenant a over its limit: %d, want it let through", m, res.StatusCode)
		}
	}
	if res := call(t, c, srv.port, sip.OPTIONS, "a.example", ""); res.StatusCode != 503 {
		t.Fatalf("initial OPTIONS of tenant a over its limit: %d, want 503", res.StatusCode)
	}
	if n := rejected.Load(); n != 2 {
		t.Fatalf("OnReject called %d times, want 2", n)
	}
}

// TestMiddlewareMethodsAndStatus: only INVITE limited, custom status and no
// Retry-After.
func TestMiddlewareMethodsAndStatus(t *testing.T) {
	clustertest.CheckLeaks(t)
	lim := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 0.1, Burst: 1}})
	mw, err := ratelimit.Middleware(lim, ratelimit.MiddlewareConfig{
		Pipe: ratelimit.SourceIP, Methods: []sip.RequestMethod{sip.INVITE},
		Status: 480, Reason: "Temporarily Unavailable", RetryAfter: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := startSIPServer(t, mw)
	c := newSIPClient(t)
	call(t, c, srv.port, sip.INVITE, "a.example", "")
	res := call(t, c, srv.port, sip.INVITE, "other.example", "") // same source IP
	if res.StatusCode != 480 || res.GetHeader("Retry-After") != nil {
		t.Fatalf("second INVITE from 127.0.0.1: %d, Retry-After %v; want 480 without it", res.StatusCode, res.GetHeader("Retry-After"))
	}
	for i := 0; i < 3; i++ {
		if res := call(t, c, srv.port, sip.OPTIONS, "a.example", ""); res.StatusCode != 486 {
			t.Fatalf("OPTIONS limited though only INVITE is: %d", res.StatusCode)
		}
	}
	if _, ok := lim.Pipe("127.0.0.1"); !ok {
		t.Fatal("SourceIP did not key the pipe by 127.0.0.1")
	}
}

func TestMiddlewareConfigErrors(t *testing.T) {
	lim := newLocal(t, ratelimit.Config{})
	for _, cfg := range []ratelimit.MiddlewareConfig{{}, {Pipe: ratelimit.FromHost, Status: 200}} {
		if _, err := ratelimit.Middleware(lim, cfg); !errors.Is(err, ratelimit.ErrBadConfig) {
			t.Errorf("%+v: %v, want ErrBadConfig", cfg, err)
		}
	}
}
