package raftowner_test

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
)

// TestWatchAgreesWithHeld: each node's watchers learn what it holds from
// the changed resources alone (evalChangesLocked), between full walks. After
// adds, a node's death and return, and removals, the set a watcher built
// from Acquired and Lost must be exactly what Held reports.
func TestWatchAgreesWithHeld(t *testing.T) {
	clustertest.CheckLeaks(t)
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: three})
	type view struct {
		mu   sync.Mutex
		held map[string]ownership.Epoch
	}
	views := map[cluster.NodeID]*view{}
	watch := func(id cluster.NodeID) {
		v := &view{held: map[string]ownership.Epoch{}}
		views[id] = v
		stop := c.Node(id).Watch("t/", func(ev ownership.Event) {
			v.mu.Lock()
			defer v.mu.Unlock()
			switch ev.Kind {
			case ownership.Acquired:
				v.held[ev.Resource] = ev.Claim.Epoch
			case ownership.Lost:
				delete(v.held, ev.Resource)
			}
		})
		t.Cleanup(stop)
	}
	for _, id := range three {
		watch(id)
	}
	names := make([]string, 120)
	for i := range names {
		names[i] = fmt.Sprintf("t/%03d", i)
		policy := ownership.Sticky
		if i%2 == 1 {
			policy = ownership.Preferred
		}
		c.Ensure(ownership.Spec{Name: names[i], Candidates: []cluster.NodeID{three[i%3], three[(i+1)%3], three[(i+2)%3]}, Policy: policy})
	}
	agree := func(what string, ids ...cluster.NodeID) {
		t.Helper()
		var why string
		ownershiptest.WaitFor(t, wait, what+": every resource held once and the watchers agree", func() bool {
			owners := map[string]int{}
			for _, id := range ids {
				n := c.Node(id)
				want := map[string]ownership.Epoch{}
				for _, name := range names {
					if e, ok := n.Held(name); ok {
						want[name] = e
						owners[name]++
					}
				}
				v := views[id]
				v.mu.Lock()
				same, got := maps.Equal(v.held, want), len(v.held)
				v.mu.Unlock()
				if !same {
					why = fmt.Sprintf("%s: watcher %d resources, Held %d", id, got, len(want))
					return false
				}
			}
			for _, name := range names {
				if owners[name] != 1 {
					why = fmt.Sprintf("%s held by %d nodes", name, owners[name])
					return false
				}
			}
			return true
		})
		if why != "" {
			t.Logf("%s: agreed after a wait (last seen: %s)", what, why)
		}
	}
	agree("after the adds", three...)
	c.Kill("n1")
	agree("n1 dead", "n2", "n3")
	c.Start("n1")
	watch("n1")
	time.Sleep(2 * c.Node("n2").Config().HoldDown) // Preferred resources go back
	agree("n1 back", three...)
	for _, name := range names[:40] {
		if err := c.Any().Remove(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	// Idempotent: a request retried after a lost reply must not fail
	// because its first attempt removed the resource.
	if err := c.Any().Remove(t.Context(), names[0]); err != nil {
		t.Fatalf("removing %s again: %v", names[0], err)
	}
	names = names[40:]
	agree("after removals", three...)
}
