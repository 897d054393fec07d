package ownership

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/internal/watch"
)

// Single is the Manager of a one-node setup: this node owns every resource
// it ensures, at once and for good. Epochs start at 1 and grow with each
// new resource. The zero value is not usable; call [NewSingle].
type Single struct {
	id cluster.NodeID

	mu     sync.Mutex
	epoch  Epoch
	owned  map[string]Epoch
	hub    watch.Hub[Event]
	mhub   watch.Hub[[]Member]
	closed bool
}

// NewSingle returns the Manager of a cluster of one node named id.
func NewSingle(id cluster.NodeID) *Single {
	return &Single{id: id, owned: make(map[string]Epoch)}
}

// LocalID returns this node's ID.
func (s *Single) LocalID() cluster.NodeID { return s.id }

// Owner reports this node as the owner of every ensured resource.
func (s *Single) Owner(resource string) (Claim, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.owned[resource]
	if !ok {
		return Claim{}, false
	}
	return Claim{Node: s.id, Epoch: e}, true
}

// Held reports whether the resource is ensured (and so held) here.
func (s *Single) Held(resource string) (Epoch, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.owned[resource]
	return e, ok && !s.closed
}

// Watch implements Manager.Watch.
func (s *Single) Watch(prefix string, fn func(Event)) (stop func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.owned))
	for n := range s.owned {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var initial []Event
	for _, n := range names {
		c := Claim{Node: s.id, Epoch: s.owned[n]}
		initial = append(initial, Event{Resource: n, Kind: Moved, Claim: c}, Event{Resource: n, Kind: Acquired, Claim: c})
	}
	return s.hub.Add(PrefixMatch(prefix), fn, initial)
}

// Ensure registers the resource; this node acquires it at a new epoch.
// Ensuring a known resource changes nothing.
func (s *Single) Ensure(ctx context.Context, spec Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.owned[spec.Name]; ok {
		return nil
	}
	s.epoch++
	s.owned[spec.Name] = s.epoch
	c := Claim{Node: s.id, Epoch: s.epoch}
	s.hub.Publish(Event{Resource: spec.Name, Kind: Moved, Claim: c}, Event{Resource: spec.Name, Kind: Acquired, Claim: c})
	return nil
}

// Remove deletes the resource; watchers get Lost and Moved. Removing an
// absent resource does nothing and is not an error.
func (s *Single) Remove(ctx context.Context, resource string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.owned[resource]
	if !ok {
		return nil
	}
	delete(s.owned, resource)
	s.hub.Publish(Event{Resource: resource, Kind: Lost, Claim: Claim{Node: s.id, Epoch: e}, Removed: true},
		Event{Resource: resource, Kind: Moved, Removed: true})
	return nil
}

// Close stops the watchers, waiting for them; Held reports false after it.
// It is idempotent.
func (s *Single) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.hub.Close()
	s.mhub.Close()
	return nil
}

// Members implements [MemberLister]: this node alone, healthy.
func (s *Single) Members() []Member {
	return []Member{{ID: s.id, Role: RoleNode, Weight: 1, Healthy: true}}
}

// WatchMembers implements [MemberLister]: fn hears the one membership
// there is, once; it never changes.
func (s *Single) WatchMembers(fn func([]Member)) (stop func()) {
	return s.mhub.Add(func([]Member) bool { return true }, fn, [][]Member{s.Members()})
}

var (
	_ Manager      = (*Single)(nil)
	_ MemberLister = (*Single)(nil)
)
