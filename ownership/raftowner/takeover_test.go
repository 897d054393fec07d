package raftowner

import (
	"log/slog"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
)

func TestAnswerLog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := newAnswerLog(t0)
	// A fresh log reports its start for any term: what an earlier
	// incarnation answered came before it.
	if got, ok := l.lastBelowLocked(5); !ok || !got.Equal(t0) {
		t.Fatalf("fresh: %v %v", got, ok)
	}
	l.recordLocked(3, at(10))
	l.recordLocked(3, at(20))
	l.recordLocked(4, at(30))
	for _, tc := range []struct {
		term uint64
		want time.Time
		ok   bool
	}{
		{5, at(30), true}, // everything so far is below 5
		{4, at(20), true}, // the last answer below 4 was term 3's
		{3, time.Time{}, false},
	} {
		got, ok := l.lastBelowLocked(tc.term)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("lastBelow(%d) = %v %v, want %v %v", tc.term, got, ok, tc.want, tc.ok)
		}
	}
}

// The bound is the quorum-th earliest report, each report its receipt time
// minus the age shrunk by ε; reports of another term, from non-voters or
// repeated ones do not count, and nothing is decided before a quorum.
func TestTakeoverBound(t *testing.T) {
	now := time.Unix(2000, 0)
	n := &Node{cfg: Config{ClockDrift: 0.1, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}}
	ls := &leaderState{n: n, term: 7, elected: now}
	ls.takeover = &takeover{quorum: 3, voters: map[cluster.NodeID]bool{"a": false, "b": false, "c": false, "d": false, "e": false}}
	report := func(from cluster.NodeID, term uint64, ago time.Duration) bool {
		return n.countReport(ls, answerReport{from: from, term: term, ago: ago})
	}
	if report("a", 7, 100*time.Millisecond) || report("a", 7, time.Second) || report("x", 7, time.Second) || report("b", 6, time.Second) {
		t.Fatal("a bound from one report")
	}
	if report("b", 7, 300*time.Millisecond) {
		t.Fatal("a bound from two of five")
	}
	if !report("c", 7, 200*time.Millisecond) {
		t.Fatal("no bound from three of five")
	}
	// Ages 100, 300, 200 ms shrink by 10 % to 90, 270, 180 ms before now;
	// the third earliest of those is now-90ms.
	if want := now.Add(-90 * time.Millisecond); !ls.takeover.bound.Equal(want) {
		t.Fatalf("bound %v, want %v", ls.takeover.bound, want)
	}
	if got := ls.takeoverFrom(); !got.Equal(now.Add(-90 * time.Millisecond)) {
		t.Fatalf("takeoverFrom %v", got)
	}
	// A bound later than the election is no use: the election stands.
	ls.takeover.bound = now.Add(time.Second)
	if got := ls.takeoverFrom(); !got.Equal(now) {
		t.Fatalf("takeoverFrom %v, want the election %v", got, now)
	}
}
