package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ratelimit"
)

func newLocal(t *testing.T, cfg ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	cfg.Logger = clustertest.Logger(t)
	l, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// offer asks for one call every step for d and returns how many were admitted.
func offer(l *ratelimit.Limiter, pipe string, step, d time.Duration) int {
	n := 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(step) {
		if l.Allow(pipe) {
			n++
		}
	}
	return n
}

func TestTokenBucketRateAndBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 100, Burst: 20}})
		if !l.AllowN("t", 20) {
			t.Fatal("a full bucket refused its burst")
		}
		if l.Allow("t") {
			t.Fatal("an empty bucket admitted a call")
		}
		if l.AllowN("u", -1) || !l.AllowN("u", 0) {
			t.Fatal("AllowN(-1) admitted or AllowN(0) refused")
		}
		if ps, _ := l.Pipe("u"); ps.Asked != 0 {
			t.Fatalf("AllowN of 0 and -1 counted %d calls of demand", ps.Asked)
		}
		if l.AllowN("u", 21) {
			t.Fatal("AllowN took more than the burst")
		}
		if !l.AllowN("u", 20) {
			t.Fatal("a refused AllowN took calls from the bucket")
		}
		// Offered 200/s for 10 s: admitted 100/s.
		time.Sleep(time.Second)
		l.AllowN("t", 20) // drain the refilled burst
		got := offer(l, "t", 5*time.Millisecond, 10*time.Second)
		if got < 999 || got > 1001 {
			t.Fatalf("admitted %d calls in 10 s at 100/s", got)
		}
	})
}

func TestFixedWindowTaildrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 50, Algorithm: ratelimit.FixedWindow}})
		for w := 0; w < 3; w++ {
			n := 0
			for i := 0; i < 80; i++ {
				if l.Allow("t") {
					n++
				}
			}
			if n != 50 {
				t.Fatalf("window %d admitted %d, want 50", w, n)
			}
			time.Sleep(time.Second)
		}
	})
}

// TestSlidingWindowNoBoundaryBurst: a fixed window admits a full window at
// the end of one and again at the start of the next; the sliding window
// does not.
func TestSlidingWindowNoBoundaryBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		burst := func(a ratelimit.Algorithm) int {
			l := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 100, Algorithm: a}})
			time.Sleep(900 * time.Millisecond)
			n := 0
			for i := 0; i < 100; i++ {
				if l.Allow("t") {
					n++
				}
			}
			time.Sleep(200 * time.Millisecond) // into the next window
			for i := 0; i < 100; i++ {
				if l.Allow("t") {
					n++
				}
			}
			return n
		}
		fixed, sliding := burst(ratelimit.FixedWindow), burst(ratelimit.SlidingWindow)
		t.Logf("admitted within 200 ms across a window boundary: fixed %d, sliding %d (limit 100/s)", fixed, sliding)
		if fixed != 200 {
			t.Errorf("fixed window admitted %d, want 200", fixed)
		}
		if sliding > 110 {
			t.Errorf("sliding window admitted %d in 200 ms at 100/s", sliding)
		}
	})
}

func TestLimitLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, ratelimit.Config{
			Limits: func(pipe string) (ratelimit.Limit, bool) {
				switch {
				case pipe == "bad":
					return ratelimit.Limit{Rate: -1}, true
				case strings.HasPrefix(pipe, "fn-"):
					return ratelimit.Limit{Rate: 1, Burst: 1}, true
				}
				return ratelimit.Limit{}, false
			},
			Pipes:   map[string]ratelimit.Limit{"table": {Rate: 2, Burst: 2}},
			Default: ratelimit.Limit{Rate: 3, Burst: 3},
		})
		count := func(pipe string) int {
			n := 0
			for i := 0; i < 10; i++ {
				if l.Allow(pipe) {
					n++
				}
			}
			return n
		}
		for pipe, want := range map[string]int{"fn-x": 1, "table": 2, "other": 3, "bad": 0} {
			if got := count(pipe); got != want {
				t.Errorf("pipe %q admitted %d of 10, want %d", pipe, got, want)
			}
		}
		free := newLocal(t, ratelimit.Config{})
		for i := 0; i < 1000; i++ {
			if !free.Allow("x") {
				t.Fatal("a pipe with no limit refused a call")
			}
		}
	})
}

func TestPipeBoundsAndExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 10}, MaxPipes: 3, IdleTimeout: time.Second})
		for _, p := range []string{"a", "b", "c"} {
			l.Allow(p)
		}
		if l.Allow("d") || l.Allow(strings.Repeat("x", 256)) || l.Allow("") {
			t.Fatal("a pipe beyond MaxPipes, a 256-byte name or an empty name was admitted")
		}
		if _, err := l.Reserve("e", 1, time.Second); !errors.Is(err, ratelimit.ErrPipeRefused) {
			t.Fatalf("Reserve on a pipe beyond MaxPipes: %v, want ErrPipeRefused", err)
		}
		if s := l.Stats(); s.Pipes != 3 || s.RefusedPipes != 4 {
			t.Fatalf("stats %+v, want 3 pipes and 3 refused", s)
		}
		time.Sleep(500 * time.Millisecond)
		l.Allow("a") // keeps "a" alive
		time.Sleep(700 * time.Millisecond)
		if _, ok := l.Pipe("b"); ok {
			t.Fatal("idle pipe b not expired")
		}
		if _, ok := l.Pipe("a"); !ok {
			t.Fatal("pipe a expired though used")
		}
		if !l.Allow("d") {
			t.Fatal("no room for a new pipe after expiry")
		}
	})
}

func TestReserveAndWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, ratelimit.Config{
			Default: ratelimit.Limit{Rate: 10, Burst: 1},
			Pipes:   map[string]ratelimit.Limit{"win": {Rate: 10, Algorithm: ratelimit.FixedWindow}},
		})
		for i, want := range []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond} {
			wait, err := l.Reserve("t", 1, time.Second)
			if err != nil || wait != want {
				t.Fatalf("reservation %d: wait %v err %v, want %v", i, wait, err, want)
			}
		}
		if _, err := l.Reserve("t", 1, 250*time.Millisecond); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("a wait of 300ms within 250ms: err %v, want ErrLimited", err)
		}
		if _, err := l.Reserve("win", 1, time.Second); !errors.Is(err, ratelimit.ErrNoReserve) {
			t.Fatalf("window pipe: err %v, want ErrNoReserve", err)
		}
		start := time.Now()
		if err := l.Wait(context.Background(), "t"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("Wait returned after %v, want 300ms (after the three reservations)", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := l.Wait(ctx, "t"); !errors.Is(err, ratelimit.ErrLimited) {
			t.Fatalf("Wait past the deadline: %v, want ErrLimited", err)
		}
	})
}

func TestCloseIdempotentNoLeak(t *testing.T) {
	clustertest.CheckLeaks(t)
	l, err := ratelimit.New(ratelimit.Config{Default: ratelimit.Limit{Rate: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Allow("a") {
		t.Fatal("first call refused")
	}
	l.Close()
	l.Close()
	if l.Allow("a") {
		t.Fatal("a closed limiter admitted a call")
	}
	if _, err := l.Reserve("a", 1, time.Second); !errors.Is(err, ratelimit.ErrClosed) {
		t.Fatalf("Reserve after Close: %v", err)
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l := newLocal(t, ratelimit.Config{Default: ratelimit.Limit{Rate: 1e9}})
	name := "tenant-42"
	raw := []byte("tenant-43")
	l.Allow(name)
	l.AllowBytes(raw)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(name) }); n != 0 {
		t.Fatalf("Allow on an existing pipe allocated %v times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() { l.AllowBytes(raw) }); n != 0 {
		t.Fatalf("AllowBytes on an existing pipe allocated %v times per call", n)
	}
	if _, ok := l.Pipe("tenant-43"); !ok {
		t.Fatal("AllowBytes made no pipe")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []ratelimit.Config{
		{Default: ratelimit.Limit{Rate: -1}},
		{Pipes: map[string]ratelimit.Limit{"x": {Burst: -1}}},
		{Default: ratelimit.Limit{Algorithm: 9}},
		{Interval: time.Second, Silence: time.Second},
		{ClockDrift: 1.5},
		{Smoothing: 2},
		{Floor: 0.9},
		{MaxMessageBytes: 100},
		{MaxPipeName: 300},
	}
	for i, c := range bad {
		if err := c.Validate(); !errors.Is(err, ratelimit.ErrBadConfig) {
			t.Errorf("config %d: %v, want ErrBadConfig", i, err)
		}
		if _, err := ratelimit.New(c); err == nil {
			t.Errorf("config %d: New accepted it", i)
		}
	}
	if err := (ratelimit.Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// TestREDDropsEarly: after an idle spell, 24 calls at once on a bucket of
// 20: the token bucket admits the first 20 and refuses the rest; RED
// starts refusing once half the burst is used and admits fewer, and under
// a steady 2× overload admits the bucket's rate all the same.
func TestREDDropsEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, ratelimit.Config{
			Pipes: map[string]ratelimit.Limit{
				"tb":  {Rate: 100, Burst: 20},
				"red": {Rate: 100, Burst: 20, Algorithm: ratelimit.RED},
			},
		})
		burst := func(pipe string) (admitted, firstRefused int) {
			firstRefused = -1
			for i := 0; i < 24; i++ {
				if l.Allow(pipe) {
					admitted++
				} else if firstRefused < 0 {
					firstRefused = i
				}
			}
			return
		}
		tbN, tbFirst := burst("tb")
		redN, redFirst := burst("red")
		t.Logf("24 calls at once: token bucket admitted %d (first refusal at call %d), RED %d (first refusal at call %d)", tbN, tbFirst, redN, redFirst)
		if tbN != 20 || tbFirst != 20 {
			t.Fatalf("token bucket: %d admitted, first refusal %d; want 20, 20", tbN, tbFirst)
		}
		if redN >= 20 || redN < 10 || redFirst < 10 || redFirst >= 20 {
			t.Fatalf("RED: %d admitted, first refusal %d; want 10..19 and a refusal between calls 10 and 19", redN, redFirst)
		}
		time.Sleep(time.Second)
		got := offer(l, "red", 5*time.Millisecond, 10*time.Second)
		if got < 950 || got > 1020 {
			t.Fatalf("RED admitted %d calls in 10 s offered 200/s at 100/s", got)
		}
		if _, err := l.Reserve("red", 1, time.Second); err != nil {
			t.Fatalf("Reserve on a RED pipe: %v", err)
		}
	})
}
