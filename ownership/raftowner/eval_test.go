package raftowner

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

var evalSeed = flag.Uint64("evalseed", 0, "replay TestEvalChangesMatchesFullWalk with this seed (it logs the one it used)")

// TestEvalChangesMatchesFullWalk drives the FSM with random Ensures,
// Assigns, Removes and member changes while the lease comes and goes, and
// checks after every entry that what the node has announced (from the
// changed resources alone, evalChangesLocked) is exactly what a walk of
// every resource finds it holds. The periodic full evaluation, which would
// hide a miss in a cluster test, never runs here.
func TestEvalChangesMatchesFullWalk(t *testing.T) {
	seed := *evalSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	n := &Node{cfg: Config{ID: "n1", Now: time.Now}, announced: map[string]ownership.Epoch{}, leaderKck: make(chan struct{}, 1)}
	n.fsm = newFSM(n.onChange)
	n.fsm.onTouch = n.touched.add
	nodes := []cluster.NodeID{"n1", "n2", "n3"}
	valid := false
	for i := uint64(1); i <= 5000; i++ {
		var c command
		name := fmt.Sprintf("r/%d", rng.IntN(40))
		switch k := rng.IntN(20); {
		case k == 0:
			valid = !valid
			if valid {
				n.lease.cur.expiry = time.Now().Add(time.Hour)
			} else {
				n.lease.cur.expiry = time.Now().Add(-time.Second)
			}
			c = command{Kind: cmdMember, Member: Member{ID: nodes[rng.IntN(3)], Role: RoleNode}}
		case k == 1:
			c = command{Kind: cmdRemove, Name: name}
		case k < 6:
			c = command{Kind: cmdEnsure, Name: name, Candidates: nodes}
		default:
			c = command{Kind: cmdAssign, Name: name, To: nodes[rng.IntN(3)]}
			if rng.IntN(4) == 0 {
				c.To = ""
			}
			n.fsm.view(func(s *state) {
				if r, ok := s.resources[name]; ok && rng.IntN(8) != 0 { // else a stale compare-and-set
					c.From, c.FromEpoch = r.Owner, r.Epoch
				}
			})
		}
		n.fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: i, Data: c.encode()})
		want := map[string]ownership.Epoch{}
		if valid {
			n.fsm.view(func(s *state) {
				for name, r := range s.resources {
					if r.Owner == "n1" {
						want[name] = ownership.Epoch(r.Epoch)
					}
				}
			})
		}
		if !maps.Equal(n.announced, want) {
			t.Fatalf("after entry %d (%+v): announced %v, holds %v", i, c, n.announced, want)
		}
	}
	if names, all := n.touched.take(); !all && len(names) == 0 {
		t.Fatal("no entry was recorded for the leader's reassignment")
	}
}
