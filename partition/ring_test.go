package partition_test

import (
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"

	"github.com/sipha/sipha/cluster"
)

// The baselines the benchmarks compare placement with. buraksezer/consistent
// is not on the module proxy this machine can reach, so the classic ring
// it builds on (Karger et al., groupcache's consistenthash) is written out
// here with the same hash.

// ring is a consistent-hash ring with vnodes points per node.
type ring struct {
	points []uint64
	owner  map[uint64]cluster.NodeID
}

func newRing(nodes []cluster.NodeID, vnodes int) *ring {
	r := &ring{owner: map[uint64]cluster.NodeID{}}
	for _, n := range nodes {
		for v := range vnodes {
			h := xxhash.Sum64String(strconv.Itoa(v) + "#" + string(n))
			r.points = append(r.points, h)
			r.owner[h] = n
		}
	}
	slices.Sort(r.points)
	return r
}

func (r *ring) get(key string) cluster.NodeID {
	h := xxhash.Sum64String(key)
	i, _ := slices.BinarySearch(r.points, h)
	if i == len(r.points) {
		i = 0
	}
	return r.owner[r.points[i]]
}

// modN is OpenSIPS usrloc "cooperation" style placement: hash mod the
// number of online nodes.
type modN []cluster.NodeID

func (m modN) get(key string) cluster.NodeID {
	return m[xxhash.Sum64String(key)%uint64(len(m))]
}
