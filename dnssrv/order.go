package dnssrv

import (
	"math/rand/v2"
)

// picker draws the random numbers of RFC 2782's selection: from the
// resolver's shared generator, or from a generator seeded by a request
// key so that the same request always gets the same order (§4.4).
type picker struct {
	r   *Resolver
	pcg *rand.PCG // non-nil: deterministic
}

// lock and unlock bracket the draws of one group, so a group costs one
// lock round trip however many entries it has.
func (p picker) lock() {
	if p.pcg == nil {
		p.r.rngMu.Lock()
	}
}

func (p picker) unlock() {
	if p.pcg == nil {
		p.r.rngMu.Unlock()
	}
}

// upTo returns a uniform number in [0, n]; call it between lock and unlock.
func (p picker) upTo(n uint64) uint64 {
	if p.pcg != nil {
		return p.pcg.Uint64() % (n + 1) // bias below n/2^64: negligible
	}
	return p.r.rng.Uint64N(n + 1)
}

// appendTo appends the plan's targets to dst: groups in their fixed
// order, entries of a group in RFC 2782 weighted random order.
func (pl *plan) appendTo(dst []Target, pk picker) []Target {
	for gi := range pl.groups {
		g := &pl.groups[gi]
		if len(g.entries) == 1 {
			dst = append(dst, g.entries[0].targets...)
			continue
		}
		var buf [16]uint16
		left := buf[:0]
		if len(g.entries) > len(buf) {
			left = make([]uint16, 0, len(g.entries))
		}
		for i := range g.entries {
			left = append(left, uint16(i))
		}
		total := g.total
		pk.lock()
		for len(left) > 1 {
			// RFC 2782: running sums over the unchosen entries (weight 0
			// first); pick the first whose sum reaches a uniform draw in
			// [0, total].
			x := pk.upTo(total)
			var sum uint64
			k := len(left) - 1
			for i, idx := range left {
				sum += uint64(g.entries[idx].weight)
				if sum >= x {
					k = i
					break
				}
			}
			e := &g.entries[left[k]]
			dst = append(dst, e.targets...)
			total -= uint64(e.weight)
			left = append(left[:k], left[k+1:]...)
		}
		pk.unlock()
		dst = append(dst, g.entries[left[0]].targets...) // the last needs no draw
	}
	return dst
}
