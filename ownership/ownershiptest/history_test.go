package ownershiptest

import (
	"testing"
	"time"
)

func TestViolations(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := NewHistory()
	ok.Observe("r", Observation{Node: "a", Epoch: 1, Start: at(0), End: at(1)})
	ok.Observe("r", Observation{Node: "a", Epoch: 1, Start: at(10), End: at(11)})
	ok.Observe("r", Observation{Node: "b", Epoch: 2, Start: at(12), End: at(13)})
	ok.Observe("r", Observation{Node: "b", Epoch: 4, Start: at(14), End: at(15)})
	if v := ok.Violations(); len(v) != 0 {
		t.Fatalf("clean history flagged: %v", v)
	}
	bad := NewHistory()
	bad.Observe("r", Observation{Node: "a", Epoch: 1, Start: at(0), End: at(1)})
	bad.Observe("r", Observation{Node: "b", Epoch: 2, Start: at(5), End: at(6)})
	bad.Observe("r", Observation{Node: "a", Epoch: 1, Start: at(8), End: at(9)})
	if v := bad.Violations(); len(v) != 1 {
		t.Fatalf("overlap flagged %d times, want once: %v", len(v), v)
	}
	dup := NewHistory()
	dup.Observe("r", Observation{Node: "a", Epoch: 3, Start: at(0), End: at(1)})
	dup.Observe("r", Observation{Node: "b", Epoch: 3, Start: at(2), End: at(3)})
	if v := dup.Violations(); len(v) == 0 {
		t.Fatal("one epoch held by two nodes not flagged")
	}
	if !ok.Act("r", 2) || ok.Act("r", 1) || ok.Rejected() != 1 || ok.Accepted("r") != 1 {
		t.Fatal("downstream accepted a stale epoch")
	}
	if ok.Epochs() != 3 {
		t.Fatalf("Epochs() = %d, want 3", ok.Epochs())
	}
}
