package dialog

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/sipha/sipha/cluster"
)

// randomVariant is one node's view of dialog id after some events.
func randomVariant(rng *rand.Rand, id ID) *record {
	r := &record{id: id, origin: "n1", state: Early, created: 100 + int64(rng.IntN(3)), timerIdx: -1}
	if rng.IntN(3) > 0 {
		r.state, r.toTag, r.answered = Confirmed, fmt.Sprint("tag", rng.IntN(3)), 200+int64(rng.IntN(3))
	}
	if rng.IntN(2) == 0 {
		r.flags |= flagAcked
	}
	if rng.IntN(3) == 0 {
		r.adopt = uint64(rng.IntN(10))
	}
	if rng.IntN(2) == 0 {
		r.state = Terminated
		r.reason = Reason(1 + rng.IntN(int(ReasonAPI)))
		r.ended, r.termBy, r.termEpoch = 300+int64(rng.IntN(3)), cluster.NodeID([]string{"n1", "n2", "n3"}[rng.IntN(3)]), uint64(rng.IntN(10))
		if rng.IntN(2) == 0 {
			r.flags |= flagReported
		}
	}
	for range rng.IntN(3) {
		r.addMember(membership{key: ProfileKey{"p", fmt.Sprint(rng.IntN(3))}, removed: rng.IntN(3) == 0})
	}
	for range rng.IntN(3) {
		r.setVar(variable{key: fmt.Sprint("k", rng.IntN(2)), val: fmt.Sprint(rng.IntN(100)), clock: uint64(rng.IntN(3)), node: "n1"})
	}
	return r
}

// TestMergeOrderIndependent: nodes that get the same updates in any order
// hold the same record. A timer's terminate from an owner older than the
// dialog's adoption is the one order-dependent input; the test pairs it,
// as the protocol does, with the adopting owner's own terminate.
func TestMergeOrderIndependent(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	id := ID{"c", "f"}
	for range 2000 {
		vs := make([]*record, 1+rng.IntN(5))
		var adopt uint64
		for i := range vs {
			vs[i] = randomVariant(rng, id)
			adopt = max(adopt, vs[i].adopt)
		}
		for _, v := range vs {
			if v.fencedBy(adopt) {
				valid := v.clone()
				valid.termEpoch, valid.termBy, valid.ended, valid.adopt = adopt, "n9", v.ended+1, adopt
				vs = append(vs, valid)
				break
			}
		}
		var first *record
		for range 6 {
			rng.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
			got := &record{id: id, timerIdx: -1}
			for _, v := range vs {
				got.merge(v)
				got.merge(v) // idempotent
			}
			if first == nil {
				first = got
				continue
			}
			if !reflect.DeepEqual(normalize(first), normalize(got)) {
				t.Fatalf("merge order changed the result:\n%+v\n%+v", first, got)
			}
		}
	}
}

// normalize sorts the sets so that equal contents compare equal.
func normalize(r *record) *record {
	c := r.clone()
	sortBy(c.members, func(a, b membership) bool { return a.key.Value < b.key.Value })
	sortBy(c.vars, func(a, b variable) bool { return a.key < b.key })
	return c
}

func sortBy[T any](s []T, less func(a, b T) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
