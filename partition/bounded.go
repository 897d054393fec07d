package partition

import (
	"cmp"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// assign precomputes the rankings of the committed keys (sorted, unique)
// and, with a load factor, bounds the owners' loads.
//
// Bounded loads follow "consistent hashing with bounded loads" (Mirrokni,
// Thorup, Zadimoghaddam) on rendezvous rankings: keys are visited in the
// order of their hash (a fixed pseudo-random order every node shares) and
// each goes to the first member of its score order that is below its
// capacity ⌊c × keys × weight/total weight⌋ (at least its fair share
// rounded up, so the capacities sum to at least the number of keys and
// every key finds a place).
func (p *Placement) assign(keys []string) {
	n := len(p.nodes)
	if len(keys) == 0 || n == 0 {
		return
	}
	p.rows = newKeyTable(len(keys))
	p.ranks = make([]uint16, 0, len(keys)*n)
	p.loads = make([]int, n)
	type hashed struct {
		h   uint64
		key string
	}
	order := make([]hashed, len(keys))
	for i, k := range keys {
		order[i] = hashed{xxhash.Sum64String(k), k}
	}
	if p.opts.LoadFactor != 0 {
		slices.SortFunc(order, func(a, b hashed) int {
			if c := cmp.Compare(a.h, b.h); c != 0 {
				return c
			}
			return cmp.Compare(a.key, b.key)
		})
	}
	caps := p.capacities(len(keys))
	sc := make([]scored, 0, len(p.actives))
	for r, k := range order {
		p.rows.put(k.h, k.key, r)
		if len(p.actives) == 0 {
			p.ranks = append(p.ranks, p.rankSpares(k.h)...)
			continue
		}
		sc = p.sortedActives(k.h, sc[:0])
		owner := 0
		if caps != nil {
			for owner < len(sc)-1 && p.loads[sc[owner].idx] >= caps[sc[owner].idx] {
				owner++
			}
		}
		p.loads[sc[owner].idx]++
		p.ranks = p.row(p.ranks, sc, owner)
	}
}

// capacities returns each active member's bound on keys, or nil when loads
// are not bounded.
func (p *Placement) capacities(keys int) []int {
	if p.opts.LoadFactor == 0 || len(p.actives) == 0 {
		return nil
	}
	total := 0.0
	for _, i := range p.actives {
		total += p.nodes[i].weight
	}
	caps := make([]int, len(p.nodes))
	for _, i := range p.actives {
		share := float64(keys) * p.nodes[i].weight / total
		// ⌊c×share⌋ keeps max/mean ≤ c; ⌈share⌉ keeps the sum ≥ keys.
		caps[i] = max(int(p.opts.LoadFactor*share), int(math.Ceil(share-1e-9)))
	}
	return caps
}
