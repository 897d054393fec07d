package clustertest

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestSynctestDelay runs a 2 s link delay inside a synctest bubble: the fake
// clock makes it exact and instant.
func TestSynctestDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		CheckLeaks(t) // works inside a bubble too
		start := time.Now()
		if start.Year() != 2000 {
			t.Fatalf("not on synctest's fake clock: %v", start)
		}
		n := newNet(t, Config{Seed: 20})
		n.SetDelay(2 * time.Second)
		c, s := connect(t, n, "a", "b", 1) // one round trip: 4 s
		if el := time.Since(start); el != 4*time.Second {
			t.Fatalf("dial took %v of fake time, want 4s", el)
		}
		mustWrite(t, c, "slow")
		expectRead(t, s, "slow")
		if el := time.Since(start); el != 6*time.Second {
			t.Fatalf("bytes arrived after %v of fake time, want 6s", el)
		}
	})
}

// TestSynctestDeadlineExtension extends the deadline of a blocked Read
// before it passes: the Read must outlive the old deadline and get the data.
func TestSynctestDeadlineExtension(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Config{Seed: 21})
		c, s := connect(t, n, "a", "b", 1)
		start := time.Now()
		s.SetReadDeadline(start.Add(time.Second))
		type result struct {
			n   int
			err error
			at  time.Duration
		}
		done := make(chan result, 1)
		go func() {
			m, err := s.Read(make([]byte, 8))
			done <- result{m, err, time.Since(start)}
		}()
		time.Sleep(500 * time.Millisecond)
		s.SetReadDeadline(start.Add(10 * time.Second))
		time.Sleep(2 * time.Second) // past the old deadline
		mustWrite(t, c, "late")
		r := <-done
		if r.n != 4 || r.err != nil || r.at != 2500*time.Millisecond {
			t.Fatalf("read = %d, %v at %v; want 4 bytes at 2.5s", r.n, r.err, r.at)
		}
		// And a deadline that does pass fires exactly on time.
		go func() {
			m, err := s.Read(make([]byte, 8))
			done <- result{m, err, time.Since(start)}
		}()
		if r := <-done; !isTimeout(r.err) || r.at != 10*time.Second {
			t.Fatalf("read = %v at %v; want a timeout at 10s", r.err, r.at)
		}
	})
}

// dropSchedule writes one byte a second for 40 s with drop rate 0.3 and
// returns, per byte, how late it arrived.
func dropSchedule(t *testing.T, seed int64) []time.Duration {
	var late []time.Duration
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Config{Seed: seed, RetransmitTimeout: 300 * time.Millisecond})
		n.SetDelay(100 * time.Millisecond)
		n.SetDropRate(0.3)
		c, s := connect(t, n, "a", "b", 1)
		for i := range 40 {
			sent := time.Now()
			mustWrite(t, c, string(rune('A'+i%26)))
			if got := readN(t, s, 1); got != string(rune('A'+i%26)) {
				t.Fatalf("byte %d: read %q", i, got)
			}
			late = append(late, time.Since(sent))
			time.Sleep(time.Second - time.Since(sent))
		}
	})
	return late
}

func TestDropRateDeterministic(t *testing.T) {
	a, b := dropSchedule(t, 42), dropSchedule(t, 42)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 42 gave two schedules:\n%v\n%v", a, b)
	}
	dropped := 0
	for i, d := range a {
		switch d {
		case 100 * time.Millisecond:
		case 400 * time.Millisecond:
			dropped++
		default:
			t.Fatalf("byte %d arrived %v late; want 100ms, or 400ms when dropped", i, d)
		}
	}
	if dropped == 0 || dropped == len(a) {
		t.Fatalf("%d of %d chunks dropped at rate 0.3", dropped, len(a))
	}
	if c := dropSchedule(t, 43); slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same schedule %v", a)
	}
}

func TestSynctestHostClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(22)
		defer n.Close()
		h := n.Host("a")
		start := time.Now()
		if !h.Now().Equal(start) {
			t.Fatalf("unskewed clock %v, want %v", h.Now(), start)
		}
		h.SetClock(10*time.Second, 1.5)
		time.Sleep(2 * time.Second)
		if got, want := h.Now().Sub(start), 13*time.Second; got != want {
			t.Fatalf("skewed clock is %v ahead of start, want %v", got, want)
		}
		if other := n.Host("b").Now(); !other.Equal(time.Now()) {
			t.Fatalf("host b's clock moved with a's")
		}
	})
}

// TestSynctestDialTimeout: a dial into a blackhole fails exactly at its
// context deadline.
func TestSynctestDialTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := NewNetwork(23)
		defer n.Close()
		n.Blackhole("b")
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := n.Host("a").Dial(ctx, "b:1")
		if !isDialTimeout(err) || time.Since(start) != 3*time.Second {
			t.Fatalf("dial = %v after %v; want a timeout after 3s", err, time.Since(start))
		}
	})
}

// TestSynctestInFlightBytesHeld: bytes still within their link delay when a
// partition starts are held with the rest, and arrive at Heal, not at their
// original delivery time.
func TestSynctestInFlightBytesHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Config{Seed: 24})
		c, s := connect(t, n, "a", "b", 1)
		n.SetDelay(time.Second)
		start := time.Now()
		mustWrite(t, c, "in flight")
		time.Sleep(500 * time.Millisecond)
		n.Partition([]string{"a"}, []string{"b"})
		expectNothing(t, s, 2*time.Second)
		time.Sleep(500 * time.Millisecond)
		n.Heal() // at 3 s
		expectRead(t, s, "in flight")
		if el := time.Since(start); el != 3*time.Second {
			t.Fatalf("held bytes arrived at %v, want at the heal (3s)", el)
		}
	})
}

// TestSynctestKillResetAfterDelay: a blocked Read on the peer of a killed
// host fails with a reset exactly one link delay after the kill.
func TestSynctestKillResetAfterDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNet(t, Config{Seed: 25})
		c, _ := connect(t, n, "a", "b", 1)
		n.SetLinkDelay("b", "a", 700*time.Millisecond)
		start := time.Now()
		errc := make(chan error, 1)
		go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
		synctest.Wait() // the Read is blocked
		n.Kill("b")
		if err := <-errc; !isReset(err) || time.Since(start) != 700*time.Millisecond {
			t.Fatalf("read = %v after %v; want ECONNRESET after 700ms", err, time.Since(start))
		}
	})
}
