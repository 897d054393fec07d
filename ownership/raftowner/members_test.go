package raftowner_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
)

// member finds id in ms.
func member(ms []ownership.Member, id cluster.NodeID) (ownership.Member, bool) {
	i := slices.IndexFunc(ms, func(m ownership.Member) bool { return m.ID == id })
	if i < 0 {
		return ownership.Member{}, false
	}
	return ms[i], true
}

// The committed membership as ownership.MemberLister reports it: roles,
// configured weights, and health that follows the leader's view (a killed
// node turns unhealthy once its resources may move, a node reporting
// itself unhealthy at once, both healthy again when back), the same on
// every node, with watchers told of each change.
func TestMemberLister(t *testing.T) {
	clustertest.CheckLeaks(t)
	ids := []cluster.NodeID{"n1", "n2", "arb"}
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: ids,
		Roles: map[cluster.NodeID]raftowner.Role{"arb": raftowner.RoleArbiter},
		Tune: func(cfg *raftowner.Config) {
			if cfg.ID == "n2" {
				cfg.Weight = 2
			}
		}})
	var ml ownership.MemberLister = c.Node("n1")
	var mu sync.Mutex
	var seen [][]ownership.Member
	stop := ml.WatchMembers(func(ms []ownership.Member) {
		mu.Lock()
		seen = append(seen, ms)
		mu.Unlock()
	})
	defer stop()
	// watched reports whether a watcher heard a membership where id had
	// the given health.
	watched := func(id cluster.NodeID, healthy bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ms := range seen {
			if m, ok := member(ms, id); ok && m.Healthy == healthy {
				return true
			}
		}
		return false
	}
	// everywhere waits until every running node reports id as want says.
	everywhere := func(what string, id cluster.NodeID, want func(ownership.Member) bool) {
		t.Helper()
		ownershiptest.WaitFor(t, wait, what, func() bool {
			for _, x := range ids {
				if n := c.Node(x); n != nil {
					if m, ok := member(n.Members(), id); !ok || !want(m) {
						return false
					}
				}
			}
			return true
		})
	}
	healthy := func(m ownership.Member) bool { return m.Healthy }
	everywhere("n2 registered with weight 2", "n2", func(m ownership.Member) bool {
		return m.Weight == 2 && m.Role == ownership.RoleNode && m.Healthy
	})
	everywhere("n1 weight 1", "n1", func(m ownership.Member) bool { return m.Weight == 1 && healthy(m) })
	everywhere("the arbiter healthy", "arb", func(m ownership.Member) bool { return m.Role == ownership.RoleArbiter && healthy(m) })

	c.Kill("n2")
	everywhere("n2 down", "n2", func(m ownership.Member) bool { return !m.Healthy && m.Weight == 2 })
	c.Start("n2")
	everywhere("n2 back", "n2", healthy)
	if !watched("n2", false) || !watched("n2", true) {
		t.Fatalf("n1's watcher did not see n2 go down and come back: %v", seen)
	}

	c.Node("n1").SetHealthy(false)
	everywhere("n1 unhealthy", "n1", func(m ownership.Member) bool { return !m.Healthy })
	c.Node("n1").SetHealthy(true)
	everywhere("n1 healthy", "n1", healthy)

	// The first delivery is the membership as it was; every later one
	// differs from the one before.
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(seen); i++ {
		if slices.Equal(seen[i], seen[i-1]) {
			t.Fatalf("delivery %d repeats the previous membership %v", i, seen[i])
		}
	}
}
