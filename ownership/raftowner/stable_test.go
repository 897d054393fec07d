package raftowner

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// TestGuardedStableAfterClose: once closed, a late current-term write (raft's
// heartbeat fast path racing Shutdown) is dropped instead of failing, which
// would make raft panic; every other access fails.
func TestGuardedStableAfterClose(t *testing.T) {
	g := &guardedStable{StableStore: raft.NewInmemStore()}
	if err := g.SetUint64(keyCurrentTerm, 3); err != nil {
		t.Fatal(err)
	}
	g.close()
	if err := g.SetUint64(keyCurrentTerm, 4); err != nil {
		t.Fatalf("late current-term write after close: %v, want it dropped", err)
	}
	if err := g.Set([]byte("LastVoteCand"), []byte("n2")); !errors.Is(err, errStoreClosed) {
		t.Fatalf("vote write after close: %v, want errStoreClosed", err)
	}
	if err := g.SetUint64([]byte("LastVoteTerm"), 4); !errors.Is(err, errStoreClosed) {
		t.Fatalf("vote-term write after close: %v, want errStoreClosed", err)
	}
	if _, err := g.GetUint64(keyCurrentTerm); !errors.Is(err, errStoreClosed) {
		t.Fatalf("read after close: %v, want errStoreClosed", err)
	}
	if v, _ := g.StableStore.GetUint64(keyCurrentTerm); v != 3 {
		t.Fatalf("the dropped write reached the store: term %d", v)
	}
}
