package partition

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/sipha/sipha/cluster"
)

// Placement is the placement of keys on one committed membership: an
// immutable value, safe for concurrent use, that every node builds
// identically from the same members, key set and options.
//
// A key's ranking is its owner, then the spares in the order they stand in
// for that owner, then the other active members by rendezvous score. The
// owner is the active member with the highest weighted rendezvous score
// (xxhash of the key mixed with each member's ID hash), or with bounded
// loads the first member in score order that still has room.
type Placement struct {
	opts    Options
	nodes   []node   // every member, sorted by ID
	actives []uint16 // indices of the active members, by ID
	seeds   []uint64 // the active members' seeds, packed for the hot loop
	// sparesFor[i] is the order in which the spares stand in for node i.
	// It depends only on i, so a failed member's keys move as one block
	// to one spare: the spare takes the failed machine's role.
	sparesFor [][]uint16
	uniform   bool // all active weights equal: compare raw hashes
	fp        uint64

	// The committed keys' rankings, precomputed: row r of ranks is
	// ranks[r*len(nodes):(r+1)*len(nodes)], and rows finds a key's row.
	rows  keyTable
	ranks []uint16
	loads []int // committed keys owned per node (first in ranking)
}

type node struct {
	id     cluster.NodeID
	seed   uint64
	weight float64
	spare  bool
	down   bool
}

// scored is a candidate with its rendezvous score for one key.
type scored struct {
	idx uint16
	u   uint64  // raw mixed hash, compared when weights are uniform
	w   float64 // weighted score otherwise
}

// Build computes the placement of keys (the committed key set; duplicates
// are ignored) over members. Its result depends only on its arguments, not
// on their order.
func Build(members []Member, keys []string, opts Options) (*Placement, error) {
	if err := validateMembers(members); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	p := &Placement{opts: opts, nodes: make([]node, len(ms)), uniform: true}
	d := xxhash.New()
	var buf [8]byte
	for i, m := range ms {
		p.nodes[i] = node{id: m.ID, seed: xxhash.Sum64String(string(m.ID)), weight: m.weight(), spare: m.Role == Spare, down: m.Down}
		if m.Role == Spare {
			continue
		}
		if len(p.actives) > 0 && p.nodes[p.actives[0]].weight != m.weight() {
			p.uniform = false
		}
		p.actives = append(p.actives, uint16(i))
		p.seeds = append(p.seeds, p.nodes[i].seed)
	}
	p.sparesFor = make([][]uint16, len(ms))
	for i := range ms {
		p.sparesFor[i] = p.rankSpares(p.nodes[i].seed)
	}
	for _, m := range ms {
		d.WriteString(string(m.ID))
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(m.weight()))
		d.Write(buf[:])
		d.Write([]byte{0, byte(m.Role), boolByte(m.Down)})
	}
	binary.LittleEndian.PutUint64(buf[:], math.Float64bits(opts.LoadFactor))
	d.Write(buf[:])
	sorted := sortKeys(keys)
	for _, k := range sorted {
		d.WriteString(k)
		d.Write([]byte{0})
	}
	p.fp = d.Sum64()
	p.assign(sorted)
	return p, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func sortKeys(keys []string) []string {
	s := slices.Clone(keys)
	slices.Sort(s)
	return slices.Compact(s)
}

// Fingerprint identifies the inputs: two placements with the same
// fingerprint place every key the same way. Nodes compare it to check they
// agree.
func (p *Placement) Fingerprint() uint64 { return p.fp }

// Options returns the options the placement was built with.
func (p *Placement) Options() Options { return p.opts }

// Members returns the membership, sorted by ID.
func (p *Placement) Members() []Member {
	out := make([]Member, len(p.nodes))
	for i, n := range p.nodes {
		r := Active
		if n.spare {
			r = Spare
		}
		out[i] = Member{ID: n.id, Role: r, Weight: n.weight, Down: n.down}
	}
	return out
}

// Load reports how many committed keys rank id first.
func (p *Placement) Load(id cluster.NodeID) int {
	if i, ok := p.index(id); ok && p.loads != nil {
		return p.loads[i]
	}
	return 0
}

func (p *Placement) index(id cluster.NodeID) (int, bool) {
	return slices.BinarySearchFunc(p.nodes, id, func(n node, id cluster.NodeID) int { return cmp.Compare(n.id, id) })
}

// Owner returns the first member of key's ranking that is not down; false
// when every member is down or there are none. It does not allocate.
func (p *Placement) Owner(key string) (cluster.NodeID, bool) {
	if len(p.nodes) == 0 {
		return "", false
	}
	h := xxhash.Sum64String(key)
	if r, ok := p.rows.get(h, key); ok {
		n := len(p.nodes)
		for _, i := range p.ranks[r*n : (r+1)*n] {
			if !p.nodes[i].down {
				return p.nodes[i].id, true
			}
		}
		return "", false
	}
	if len(p.actives) > 0 {
		if best := p.top(h); !p.nodes[best].down {
			return p.nodes[best].id, true
		}
	}
	var stack [64]uint16
	for _, i := range p.rank(h, stack[:0]) {
		if !p.nodes[i].down {
			return p.nodes[i].id, true
		}
	}
	return "", false
}

// AppendRank appends key's ranking (owner, then standbys in order, down
// members included) to dst and returns it. With enough capacity in dst it
// does not allocate.
func (p *Placement) AppendRank(dst []cluster.NodeID, key string) []cluster.NodeID {
	h := xxhash.Sum64String(key)
	if r, ok := p.rows.get(h, key); ok {
		n := len(p.nodes)
		for _, i := range p.ranks[r*n : (r+1)*n] {
			dst = append(dst, p.nodes[i].id)
		}
		return dst
	}
	var stack [64]uint16
	for _, i := range p.rank(h, stack[:0]) {
		dst = append(dst, p.nodes[i].id)
	}
	return dst
}

// Rank returns key's ranking in a new slice.
func (p *Placement) Rank(key string) []cluster.NodeID {
	return p.AppendRank(make([]cluster.NodeID, 0, len(p.nodes)), key)
}

// mix is murmur3's 64-bit finalizer: it spreads the key hash xor the
// member's seed into a uniform score for that pair.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// weighted turns a uniform hash into the weighted rendezvous score
// w / -ln(u) (Schindelhauer and Schomaker), whose argmax picks each member
// with probability proportional to its weight.
func weighted(u uint64, w float64) float64 {
	f := (float64(u>>11) + 0.5) / (1 << 53)
	return w / -math.Log(f)
}

// better orders candidates best first; ties go to the smaller ID, so the
// order is total and the same everywhere.
func (p *Placement) better(a, b scored) bool {
	if p.uniform {
		if a.u != b.u {
			return a.u > b.u
		}
	} else if a.w != b.w {
		return a.w > b.w
	}
	return a.idx < b.idx
}

func (p *Placement) score(h uint64, i uint16) scored {
	s := scored{idx: i, u: mix(h ^ p.nodes[i].seed)}
	if !p.uniform {
		s.w = weighted(s.u, p.nodes[i].weight)
	}
	return s
}

// top returns the active member with the best score for hash h.
func (p *Placement) top(h uint64) uint16 {
	if p.uniform {
		// The hot path of a key outside the table: one mix per member
		// over a packed slice. Strict > keeps the smaller ID on a tie,
		// as better does.
		bi, best := 0, mix(h^p.seeds[0])
		for i, s := range p.seeds[1:] {
			if u := mix(h ^ s); u > best {
				bi, best = i+1, u
			}
		}
		return p.actives[bi]
	}
	best := p.score(h, p.actives[0])
	for _, i := range p.actives[1:] {
		if s := p.score(h, i); p.better(s, best) {
			best = s
		}
	}
	return best.idx
}

// sortedActives appends the active members to buf best first for h.
func (p *Placement) sortedActives(h uint64, buf []scored) []scored {
	for _, i := range p.actives {
		buf = append(buf, p.score(h, i))
	}
	// Insertion sort: farms are tens of nodes, and it does not allocate.
	for i := 1; i < len(buf); i++ {
		for j := i; j > 0 && p.better(buf[j], buf[j-1]); j-- {
			buf[j], buf[j-1] = buf[j-1], buf[j]
		}
	}
	return buf
}

// rankSpares orders the spares for an owner with seed h.
func (p *Placement) rankSpares(h uint64) []uint16 {
	var sc []scored
	for i, n := range p.nodes {
		if n.spare {
			sc = append(sc, scored{idx: uint16(i), u: mix(h ^ n.seed)})
		}
	}
	slices.SortFunc(sc, func(a, b scored) int {
		if a.u != b.u {
			return cmp.Compare(b.u, a.u)
		}
		return cmp.Compare(a.idx, b.idx)
	})
	out := make([]uint16, len(sc))
	for i, s := range sc {
		out[i] = s.idx
	}
	return out
}

// rank appends the ranking of an uncommitted key with hash h: the best
// active member, its spares, then the other active members.
func (p *Placement) rank(h uint64, dst []uint16) []uint16 {
	if len(p.actives) == 0 {
		return append(dst, p.rankSpares(h)...)
	}
	var stack [64]scored
	sc := p.sortedActives(h, stack[:0])
	return p.row(dst, sc, 0)
}

// row appends a ranking whose owner is sc[owner] and whose other actives
// follow in sc's order.
func (p *Placement) row(dst []uint16, sc []scored, owner int) []uint16 {
	o := sc[owner].idx
	dst = append(dst, o)
	dst = append(dst, p.sparesFor[o]...)
	for k, s := range sc {
		if k != owner {
			dst = append(dst, s.idx)
		}
	}
	return dst
}
