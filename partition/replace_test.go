package partition_test

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/partition"
)

// listerManager is an ownership.Manager and MemberLister whose membership
// and owners the test sets, and which records every Ensure: the unit
// tests of sticky re-placement count writes, which a real cluster does not
// show. Events are delivered synchronously on the caller's goroutine.
type listerManager struct {
	self cluster.NodeID

	mu       sync.Mutex
	members  []ownership.Member
	owners   map[string]ownership.Claim
	ensured  map[string][]ownership.Spec // by resource, in order
	watchers map[int]func(ownership.Event)
	mwatch   map[int]func([]ownership.Member)
	next     int
	// block, when set, makes Ensure wait for it or its context; entered
	// receives once per blocked Ensure.
	block   chan struct{}
	entered chan struct{}
}

func newListerManager(self cluster.NodeID, ids ...cluster.NodeID) *listerManager {
	m := &listerManager{self: self, owners: map[string]ownership.Claim{}, ensured: map[string][]ownership.Spec{},
		watchers: map[int]func(ownership.Event){}, mwatch: map[int]func([]ownership.Member){}}
	m.members = nodes(ids...)
	return m
}

func nodes(ids ...cluster.NodeID) []ownership.Member {
	var ms []ownership.Member
	for _, id := range ids {
		ms = append(ms, ownership.Member{ID: id, Role: ownership.RoleNode, Weight: 1, Healthy: true})
	}
	return ms
}

func (m *listerManager) LocalID() cluster.NodeID { return m.self }

func (m *listerManager) Owner(res string) (ownership.Claim, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.owners[res]
	return c, ok
}

func (m *listerManager) Held(res string) (ownership.Epoch, bool) {
	c, ok := m.Owner(res)
	return c.Epoch, ok && c.Node == m.self
}

func (m *listerManager) Watch(prefix string, fn func(ownership.Event)) func() {
	m.mu.Lock()
	id := m.next
	m.next++
	m.watchers[id] = fn
	for _, res := range slices.Sorted(maps.Keys(m.owners)) {
		fn(ownership.Event{Resource: res, Kind: ownership.Moved, Claim: m.owners[res]})
	}
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.watchers, id)
		m.mu.Unlock()
	}
}

// setOwner commits res to node at epoch and tells the watchers.
func (m *listerManager) setOwner(res string, c ownership.Claim) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.owners[res] = c
	for _, fn := range m.watchers {
		fn(ownership.Event{Resource: res, Kind: ownership.Moved, Claim: c})
	}
}

func (m *listerManager) Ensure(ctx context.Context, spec ownership.Spec) error {
	m.mu.Lock()
	block, entered := m.block, m.entered
	m.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ensured[spec.Name] = append(m.ensured[spec.Name], spec)
	return nil
}

func (m *listerManager) Remove(context.Context, string) error { return nil }

func (m *listerManager) Members() []ownership.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.members)
}

func (m *listerManager) WatchMembers(fn func([]ownership.Member)) func() {
	m.mu.Lock()
	id := m.next
	m.next++
	m.mwatch[id] = fn
	fn(slices.Clone(m.members))
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		delete(m.mwatch, id)
		m.mu.Unlock()
	}
}

// setMembers commits a membership and tells the membership watchers.
func (m *listerManager) setMembers(ms []ownership.Member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members = ms
	for _, fn := range m.mwatch {
		fn(slices.Clone(ms))
	}
}

// takeEnsured returns the Ensures recorded since the last call.
func (m *listerManager) takeEnsured() map[string][]ownership.Spec {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.ensured
	m.ensured = map[string][]ownership.Spec{}
	return e
}

// rankOver is key's ranking over ms, as the Partitioner computes it.
func rankOver(t *testing.T, ms []ownership.Member, key string) []cluster.NodeID {
	t.Helper()
	pl, err := partition.Build(partition.Committed(staticLister(ms)).Members(), nil, partition.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return pl.Rank(key)
}

type staticLister []ownership.Member

func (s staticLister) Members() []ownership.Member { return s }
func (s staticLister) WatchMembers(fn func([]ownership.Member)) func() {
	fn(s)
	return func() {}
}

// Node b of a farm re-places exactly the sticky keys it owns or whose new
// ranking names it first among the healthy nodes, with their ranking over
// the new membership; health changes alone re-place nothing.
func TestStickyReplaceWritesOnlyItsKeys(t *testing.T) {
	clustertest.CheckLeaks(t)
	m := newListerManager("b", "a", "b", "c")
	p, err := partition.New(m, nil, partition.Config{Failback: partition.FailbackSticky, ReplaceDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	keys := tenants(300)
	owner := map[string]cluster.NodeID{}
	for i, k := range keys {
		owner[k] = rankOver(t, m.Members(), k)[0]
		m.setOwner(p.Resource(k), ownership.Claim{Node: owner[k], Epoch: ownership.Epoch(i + 1)})
	}
	// Health flaps: no pass. Each state lasts far longer than
	// ReplaceDelay (1 ms), so a pass it caused would be counted below.
	for range 2 {
		flap := nodes("a", "b", "c")
		flap[2].Healthy = false
		m.setMembers(flap)
		time.Sleep(50 * time.Millisecond)
		m.setMembers(nodes("a", "b", "c"))
		time.Sleep(50 * time.Millisecond)
	}

	check := func(ms []ownership.Member, carried map[string]bool, passes uint64) map[string]bool {
		t.Helper()
		ownershiptest.WaitFor(t, wait, "a re-placement pass", func() bool { return p.ReplaceStats().Passes >= passes })
		if s := p.ReplaceStats(); s.Passes != passes || s.Aborted != 0 || s.Failures != 0 {
			t.Fatalf("stats %+v, want %d passes, none aborted or failed", s, passes)
		}
		got := m.takeEnsured()
		resp := map[string]bool{}
		for _, k := range keys {
			rank := rankOver(t, ms, k)
			var first cluster.NodeID
			for _, id := range rank {
				if i := slices.IndexFunc(ms, func(m ownership.Member) bool { return m.ID == id }); ms[i].Healthy {
					first = id
					break
				}
			}
			if owner[k] == "b" || first == "b" {
				resp[k] = true
			}
			specs := got[p.Resource(k)]
			switch {
			case resp[k] || carried[k]:
				if len(specs) != 1 || specs[0].Policy != ownership.Sticky || !slices.Equal(specs[0].Candidates, rank) {
					t.Errorf("%s (owner %s, first healthy %s): ensured %+v, want once, sticky, candidates %v", k, owner[k], first, specs, rank)
				}
			case len(specs) != 0:
				t.Errorf("%s (owner %s, first healthy %s): ensured %+v by b, want no write", k, owner[k], first, specs)
			}
		}
		t.Logf("b re-placed %d of %d keys", len(got), len(keys))
		return resp
	}
	joined := nodes("a", "b", "c", "d")
	m.setMembers(joined)
	resp := check(joined, nil, 1)

	// a leaves while it still owns its keys (a removed owner is not kept
	// as a candidate); d is unhealthy, so b also writes the keys ranked
	// first on d with b next. The keys b wrote before are written again
	// (their lists may have landed late), whoever is responsible now.
	left := nodes("b", "c", "d")
	left[2].Healthy = false
	m.setMembers(left)
	check(left, resp, 2)
}

// Close stops the re-placement while an Ensure of it is in flight: the
// Ensure's context ends, Close returns, and no goroutine is left.
func TestStickyReplaceCloseMidPass(t *testing.T) {
	clustertest.CheckLeaks(t)
	m := newListerManager("a", "a", "b")
	p, err := partition.New(m, nil, partition.Config{Failback: partition.FailbackSticky, ReplaceDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range tenants(20) {
		m.setOwner(p.Resource(k), ownership.Claim{Node: "a", Epoch: ownership.Epoch(i + 1)})
	}
	m.mu.Lock()
	m.block, m.entered = make(chan struct{}), make(chan struct{}, 1)
	m.mu.Unlock()
	m.setMembers(nodes("a", "b", "c"))
	select {
	case <-m.entered:
	case <-time.After(wait):
		t.Fatal("no re-placement started")
	}
	p.Close()
	if s := p.ReplaceStats(); s.Passes != 0 || s.Aborted != 0 || s.Ensures != 1 || s.Failures != 0 {
		t.Fatalf("stats after Close %+v, want one Ensure, cut short", s)
	}
	if n := len(m.takeEnsured()); n != 0 {
		t.Fatalf("%d Ensures completed after Close", n)
	}
	p.Close() // idempotent
}
