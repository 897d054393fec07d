package raftowner

import (
	"bytes"
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

var errStoreClosed = errors.New("raftowner: stable store closed")

// keyCurrentTerm is the key hashicorp/raft (v1.7) persists the current
// term under.
var keyCurrentTerm = []byte("CurrentTerm")

// guardedStable closes a gap hashicorp/raft leaves at shutdown. Its network
// transport handles heartbeats on the transport's own goroutines (a fast
// path outside raft's loop, which Shutdown does not wait for), so a
// heartbeat that passed raft's shutdown check can still persist the current
// term after Shutdown returned and the stores were closed; raft panics when
// that write fails. After close, a current-term write is dropped: the node
// is stopped, and a term it did not persist is learnt again at restart
// (accepting a leader is not a vote, so no term gets two votes from it).
// Every other write after close fails as usual: votes are only handled by
// raft's loop, which has stopped, and raft never panics on those.
// close waits for writes in flight.
type guardedStable struct {
	raft.StableStore
	mu     sync.RWMutex
	closed bool
}

func (g *guardedStable) Set(k, v []byte) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return errStoreClosed
	}
	return g.StableStore.Set(k, v)
}

func (g *guardedStable) SetUint64(k []byte, v uint64) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		if bytes.Equal(k, keyCurrentTerm) {
			return nil
		}
		return errStoreClosed
	}
	return g.StableStore.SetUint64(k, v)
}

func (g *guardedStable) Get(k []byte) ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, errStoreClosed
	}
	return g.StableStore.Get(k)
}

func (g *guardedStable) GetUint64(k []byte) (uint64, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return 0, errStoreClosed
	}
	return g.StableStore.GetUint64(k)
}

func (g *guardedStable) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
