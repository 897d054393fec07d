package raftowner

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestAwaitSetsShutdownCh checks, against the pinned raft, that the futures
// raftowner waits on take a ShutdownCh, and that closing it ends a wait on
// a future raft never resolves.
func TestAwaitSetsShutdownCh(t *testing.T) {
	cfg := raft.DefaultConfig()
	cfg.LocalID = "a"
	cfg.Logger = hclog.NewNullLogger()
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport("a")
	// Two voters, the other one absent: this node can never win, so
	// VerifyLeader and Apply answer with an error at once or never.
	if err := raft.BootstrapCluster(cfg, store, store, raft.NewInmemSnapshotStore(), trans,
		raft.Configuration{Servers: []raft.Server{{ID: "a", Address: "a"}, {ID: "b", Address: "b"}}}); err != nil {
		t.Fatal(err)
	}
	r, err := raft.NewRaft(cfg, newFSM(nil), store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	for name, f := range map[string]raft.Future{
		"VerifyLeader": r.VerifyLeader(),
		"Apply":        r.Apply([]byte{1}, time.Second),
		"Transfer":     r.LeadershipTransfer(),
		"RemoveServer": r.RemoveServer("b", 0, time.Second),
	} {
		if !setShutdownCh(f, make(chan struct{})) {
			t.Errorf("%s future (%T) takes no ShutdownCh", name, f)
		}
	}
	n := &Node{quit: make(chan struct{})}
	stuck := &stuckFuture{}
	stuck.errCh = make(chan error)
	done := make(chan error, 1)
	go func() { done <- n.await(stuck) }()
	close(n.quit)
	select {
	case err := <-done:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("await = %v, want ErrRaftShutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("await did not return after quit closed")
	}
}

// stuckFuture mimics raft's deferError layout (errCh never answered, an
// exported ShutdownCh) to show await ends such a wait.
type stuckFuture struct {
	errCh      chan error
	ShutdownCh chan struct{}
}

func (s *stuckFuture) Error() error {
	select {
	case err := <-s.errCh:
		return err
	case <-s.ShutdownCh:
		return raft.ErrRaftShutdown
	}
}
