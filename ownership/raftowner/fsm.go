package raftowner

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// change is one owner change the FSM applied, handed to the node so it can
// fire events.
type change struct {
	Name     string
	Old, New cluster.NodeID
	OldEpoch uint64
	Epoch    uint64
	Removed  bool
}

// fsm is the raft.FSM: it applies commands to the state and reports owner
// changes. Reads from other goroutines go through view, under mu.
type fsm struct {
	mu sync.RWMutex
	st *state
	// applied is the index of the last command applied (directly or through
	// a snapshot). Only commands reach the FSM, so it skips Raft's no-op
	// and configuration entries; raft.AppliedIndex is no substitute, since
	// raft advances it before the FSM goroutine has applied the entries.
	applied atomic.Uint64

	// onChange is called from raft's FSM goroutine after each entry or
	// restore that changed owners (also with no changes after a member
	// change), never concurrently, after mu is released.
	onChange func(changes []change, index uint64)
	// onTouch, when set, is called just before onChange with the resource
	// the entry was about, or all when it may change any decision
	// (membership, weights, health, a snapshot restore).
	onTouch func(name string, all bool)
}

func newFSM(onChange func([]change, uint64)) *fsm {
	return &fsm{st: newState(), onChange: onChange}
}

// applyResult is what raft's ApplyFuture.Response returns.
type applyResult struct {
	Err     error
	Applied bool // false when a compare-and-set found a newer state
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	c, err := decodeCommand(l.Data)
	if err != nil {
		// A corrupt entry is skipped, never fatal: every replica skips it
		// the same way, so they stay identical.
		f.applied.Store(l.Index)
		return applyResult{Err: err}
	}
	f.mu.Lock()
	changes, res := f.st.apply(c, l.Index)
	f.applied.Store(l.Index)
	f.mu.Unlock()
	if f.onTouch != nil {
		switch c.Kind {
		case cmdEnsure, cmdRemove, cmdAssign:
			f.onTouch(c.Name, false)
		default:
			f.onTouch("", true)
		}
	}
	if f.onChange != nil {
		f.onChange(changes, l.Index)
	}
	return res
}

// apply changes the state; it is deterministic.
func (s *state) apply(c command, index uint64) ([]change, applyResult) {
	switch c.Kind {
	case cmdEnsure:
		r, ok := s.resources[c.Name]
		if !ok {
			r = &resource{Name: c.Name}
			s.resources[c.Name] = r
		}
		r.Candidates = slices.Clone(c.Candidates)
		r.Policy, r.HoldDown = c.Policy, c.HoldDown
		return nil, applyResult{Applied: true}
	case cmdRemove:
		r, ok := s.resources[c.Name]
		if !ok {
			return nil, applyResult{} // already gone: Remove is idempotent
		}
		delete(s.resources, c.Name)
		return []change{{Name: c.Name, Old: r.Owner, OldEpoch: r.Epoch, Epoch: r.Epoch, Removed: true}}, applyResult{Applied: true}
	case cmdAssign:
		r, ok := s.resources[c.Name]
		if !ok {
			return nil, applyResult{Err: errUnknownResource}
		}
		if r.Owner != c.From || r.Epoch != c.FromEpoch || c.From == c.To {
			return nil, applyResult{}
		}
		s.epoch++
		ch := change{Name: c.Name, Old: r.Owner, OldEpoch: r.Epoch, New: c.To, Epoch: s.epoch}
		r.Owner, r.Epoch = c.To, s.epoch
		r.ReleasedBy, r.ReleaseIndex = "", 0
		if c.To == "" && c.From != "" {
			r.ReleasedBy, r.ReleaseIndex = c.From, index
		}
		return []change{ch}, applyResult{Applied: true}
	case cmdMember:
		s.members[c.Member.ID] = c.Member
		return nil, applyResult{Applied: true}
	case cmdForget:
		delete(s.members, c.Member.ID)
		delete(s.info, c.Member.ID)
		return nil, applyResult{Applied: true}
	case cmdWeight, cmdHealth:
		s.applyInfo(c)
		return nil, applyResult{Applied: true}
	}
	return nil, applyResult{Err: fmt.Errorf("unknown command %d", c.Kind)}
}

var errUnknownResource = errors.New("raftowner: unknown resource")

// view runs fn with the state under the read lock; fn must not keep it.
func (f *fsm) view(fn func(s *state)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.st)
}

// Snapshot implements raft.FSM. Encoding here, under the read lock, makes
// the snapshot a consistent copy; Persist then only writes bytes.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return snapshot(f.st.encode(f.applied.Load())), nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("raftowner: read snapshot: %w", err)
	}
	st, applied, err := decodeState(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	old := f.st
	f.st = st
	f.applied.Store(applied)
	f.mu.Unlock()
	if f.onTouch != nil {
		f.onTouch("", true)
	}
	if f.onChange != nil {
		f.onChange(diffStates(old, st), f.applied.Load())
	}
	return nil
}

// diffStates lists the owner changes between two states, for watchers
// after a snapshot restore.
func diffStates(old, cur *state) []change {
	var out []change
	for name, o := range old.resources {
		n, ok := cur.resources[name]
		switch {
		case !ok:
			out = append(out, change{Name: name, Old: o.Owner, OldEpoch: o.Epoch, Epoch: o.Epoch, Removed: true})
		case n.Owner != o.Owner || n.Epoch != o.Epoch:
			out = append(out, change{Name: name, Old: o.Owner, OldEpoch: o.Epoch, New: n.Owner, Epoch: n.Epoch})
		}
	}
	for name, n := range cur.resources {
		if _, ok := old.resources[name]; !ok && n.Owner != "" {
			out = append(out, change{Name: name, New: n.Owner, Epoch: n.Epoch})
		}
	}
	slices.SortFunc(out, func(a, b change) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
