package partition_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/partition"
)

// With ownership.Single the one node holds every key it adds: the watcher
// first reports what is held, then each gain and loss, and Close stops it.
func TestPartitionerHandoff(t *testing.T) {
	clustertest.CheckLeaks(t)
	p := singleNode(t)
	ctx := context.Background()
	if err := p.Add(ctx, "acme.example"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var got []partition.Change
	stop := p.Watch(func(c partition.Change) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	defer stop()
	seen := func(n int) []partition.Change {
		var out []partition.Change
		clustertest.Eventually(t, 5*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			out = slices.Clone(got)
			return len(got) >= n
		}, "%d changes", n)
		return out
	}
	c := seen(1)[0]
	if !slices.Equal(c.Gained, []string{"acme.example"}) || len(c.Lost) != 0 || c.Epoch == 0 {
		t.Fatalf("first change %+v, want acme.example gained", c)
	}
	if err := p.Add(ctx, "globex.example"); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(ctx, "acme.example"); err != nil {
		t.Fatal(err)
	}
	// The add and the removal may arrive in one change or two.
	var gained, lost []string
	clustertest.Eventually(t, 5*time.Second, func() bool {
		gained, lost = nil, nil
		for _, c := range seen(2)[1:] {
			gained = append(gained, c.Gained...)
			lost = append(lost, c.Lost...)
		}
		return len(gained) == 1 && len(lost) == 1
	}, "the add and the removal")
	if gained[0] != "globex.example" || lost[0] != "acme.example" {
		t.Fatalf("gained %v lost %v", gained, lost)
	}
	if ks := p.Keys(); !slices.Equal(ks, []string{"globex.example"}) {
		t.Fatalf("Keys() = %v", ks)
	}
	if e, ok := p.Held("globex.example"); !ok || e == 0 {
		t.Fatal("globex.example not held")
	}
	pl, err := p.Placement()
	if err != nil || pl.Load("n01") != 1 {
		t.Fatalf("placement %v, %v: want n01 owning the one committed key", pl, err)
	}
	stop()
	p.Close()
	p.Close()
	if err := p.Add(ctx, "x y"); !errors.Is(err, partition.ErrBadKey) {
		t.Fatalf("Add with a space: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	m := ownership.NewSingle("n1")
	defer m.Close()
	src := partition.MemberSourceFunc(func() []partition.Member { return nil })
	for _, cfg := range []partition.Config{
		{Options: partition.Options{LoadFactor: 0.9}},
		{HoldDown: -time.Second},
		{ReplaceDelay: -time.Second},
		{Kind: "Bad Kind"},
		{Failback: partition.FailbackSticky + 1},
	} {
		if _, err := partition.New(m, src, cfg); !errors.Is(err, partition.ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
	if _, err := partition.New(nil, src, partition.Config{}); !errors.Is(err, partition.ErrBadConfig) {
		t.Errorf("New(nil manager) = %v", err)
	}
	// No member source: a manager that lists no members is refused.
	if _, err := partition.New(managerOnly{m}, nil, partition.Config{}); !errors.Is(err, partition.ErrBadConfig) {
		t.Errorf("New(no source, no MemberLister) = %v, want ErrBadConfig", err)
	}
	// A sticky key needs a member to be placed on.
	p, err := partition.New(m, src, partition.Config{Failback: partition.FailbackSticky})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Add(context.Background(), "acme.example"); !errors.Is(err, partition.ErrBadMembers) {
		t.Errorf("sticky Add with no members = %v, want ErrBadMembers", err)
	}
}

// managerOnly hides every optional ability of the manager it wraps.
type managerOnly struct{ ownership.Manager }

// With no member source, New places over the manager's committed
// membership: Single's one node owns every key.
func TestNewUsesCommittedMembership(t *testing.T) {
	m := ownership.NewSingle("n1")
	defer m.Close()
	p, err := partition.New(m, nil, partition.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Add(ctx, "acme.example"); err != nil {
		t.Fatal(err)
	}
	pl, err := p.Placement()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := pl.Owner("acme.example"); !ok || got != "n1" {
		t.Fatalf("owner of acme.example = %q, %v; want n1", got, ok)
	}
}

func TestCommittedMapsRolesWeightsHealth(t *testing.T) {
	ml := listed{
		{ID: "a", Role: ownership.RoleNode, Weight: 2, Healthy: true},
		{ID: "arb", Role: ownership.RoleArbiter, Weight: 1, Healthy: true},
		{ID: "b", Role: ownership.RoleNode, Weight: 1, Healthy: false},
		{ID: "s", Role: ownership.RoleSpare, Weight: 1, Healthy: true},
	}
	got := partition.Committed(ml).Members()
	want := []partition.Member{
		{ID: "a", Weight: 2},
		{ID: "b", Weight: 1, Down: true},
		{ID: "s", Role: partition.Spare, Weight: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Committed members = %+v, want %+v", got, want)
	}
}

type listed []ownership.Member

func (l listed) Members() []ownership.Member { return l }
func (l listed) WatchMembers(fn func([]ownership.Member)) func() {
	fn(l)
	return func() {}
}
