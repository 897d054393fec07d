package raftowner

import (
	"testing"

	"github.com/sipha/sipha/cluster"
)

func TestConfirmRoundCounts(t *testing.T) {
	cr := &confirmRound{nonce: 7, term: 3, need: 2, voters: map[cluster.NodeID]bool{"b": false, "c": false, "d": false}}
	steps := []struct {
		c    confirmation
		done bool
	}{
		{confirmation{from: "b", nonce: 6, term: 3}, false}, // an older round's answer
		{confirmation{from: "b", nonce: 7, term: 4}, false}, // b moved to a newer term
		{confirmation{from: "x", nonce: 7, term: 3}, false}, // not a voter
		{confirmation{from: "c", nonce: 7, term: 3}, false},
		{confirmation{from: "c", nonce: 7, term: 3}, false}, // counted once
		{confirmation{from: "d", nonce: 7, term: 3}, true},
	}
	for i, s := range steps {
		if got := cr.count(s.c); got != s.done {
			t.Fatalf("step %d (%+v): count = %v, want %v", i, s.c, got, s.done)
		}
	}
}
