package usrloc

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// Segments of a rec's blob. Interned fields have empty segments.
const (
	segContact = iota
	segReceived
	segCallID
	segInstance
	segUA
	segPath
	segSocket
	nSeg
)

// maxBlob caps the bytes of one binding's strings (uint16 offsets).
const maxBlob = 1<<16 - 1

// Internal flag bits above the user's 8.
const flagTombstone uint16 = 1 << 8

// rec is a binding as stored: every per-binding string lives in one blob so
// a binding costs one allocation besides its slot, and the repeated ones
// (User-Agent, Path, socket, node) are interned IDs. Layout is tuned for the
// heap budget per binding; see README.md.
//
// 64 bytes: a slot holds one beside the AOR's bytes (see slot).
type rec struct {
	// blob holds the strings, end[nSeg-1] bytes; they are never written
	// after pack. A pointer rather than a string saves the length's 8
	// bytes, which end has already.
	blob    *byte
	end     [nSeg]uint16
	q       uint16
	ua      uint32 // interned IDs; 0 = inline in blob (or empty)
	path    uint32
	socket  uint32
	node    uint16 // below maxNodes
	flags   uint16
	expires int64 // by this node's clock, Unix ns; for a tombstone: when it is purged
	hlc     HLC
	cseq    uint32
	regID   uint32
}

func (r *rec) seg(i int) string {
	start := uint16(0)
	if i > 0 {
		start = r.end[i-1]
	}
	if r.end[i] == start {
		return "" // blob may be nil, and start may be its end
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(r.blob), start)), r.end[i]-start)
}

func (r *rec) tombstone() bool { return r.flags&flagTombstone != 0 }

// keyHash identifies the binding within its AOR: instance and reg-id when
// the UA is RFC 5626 capable, else the contact URI.
func (r *rec) keyHash() uint64 { return bindingKeyHash(r.seg(segInstance), r.regID, r.seg(segContact)) }

func bindingKeyHash(instance string, regID uint32, contact string) uint64 {
	if instance != "" && regID != 0 {
		var d xxhash.Digest
		d.Reset()
		d.WriteString(instance)
		var b [5]byte
		b[0] = 0xff
		b[1], b[2], b[3], b[4] = byte(regID>>24), byte(regID>>16), byte(regID>>8), byte(regID)
		d.Write(b[:])
		return d.Sum64()
	}
	return xxhash.Sum64String(contact)
}

// sameKey reports whether r and o are the same binding.
func (r *rec) sameKey(o *rec) bool {
	ri, oi := r.seg(segInstance), o.seg(segInstance)
	if ri != "" && r.regID != 0 {
		return ri == oi && r.regID == o.regID
	}
	if oi != "" && o.regID != 0 {
		return false
	}
	return r.seg(segContact) == o.seg(segContact)
}

// digest is r's contribution to its bucket digest: every node holding the
// same version of the same binding computes the same value.
func (r *rec) digest(aor string, nodes *interner) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(aor)
	d.Write([]byte{0})
	var b [8 + 8 + 1]byte
	k := r.keyHash()
	h := uint64(r.hlc)
	for i := 0; i < 8; i++ {
		b[i] = byte(k >> (8 * i))
		b[8+i] = byte(h >> (8 * i))
	}
	b[16] = byte(r.flags >> 8)
	d.Write(b[:])
	d.WriteString(nodes.str(uint32(r.node)))
	return d.Sum64()
}

// newer reports whether a should replace b (both the same binding). Within
// one Call-ID the higher CSeq wins (RFC 3261 §10.3 step 7); otherwise the
// larger HLC, then the larger node ID, so every node picks the same winner.
// The Call-ID rule makes the order non-transitive only for three versions
// written concurrently on different nodes; pairwise merges still converge
// because a merge never creates a version, it only picks one of two.
func newer(a, b *rec, nodes *interner) bool {
	if a.cseq != b.cseq && a.seg(segCallID) == b.seg(segCallID) {
		return a.cseq > b.cseq
	}
	if a.hlc != b.hlc {
		return a.hlc > b.hlc
	}
	if a.node != b.node {
		return nodes.str(uint32(a.node)) > nodes.str(uint32(b.node))
	}
	// Same stamp from the same node: the same write. A tombstone wins so a
	// delete is never undone by a replay of what it deleted.
	return a.tombstone() && !b.tombstone()
}

// HLC is a hybrid logical clock value: the upper 48 bits are milliseconds
// since the Unix epoch, the lower 16 bits a counter that orders events within
// one millisecond and events that arrive from a node whose clock runs ahead.
// Wall clocks are not trusted across nodes: a node that sees a remote HLC
// ahead of its own clock moves its clock up to it, so a write made after
// observing another always carries a larger HLC (causal order), whatever the
// skew.
type HLC uint64

const hlcLogicalBits = 16

// Time is the physical part of h.
func (h HLC) Time() time.Time { return time.UnixMilli(int64(h >> hlcLogicalBits)) }

// hlcClock issues HLC values. Safe for concurrent use.
type hlcClock struct {
	now  func() time.Time
	mu   sync.Mutex
	last HLC
}

// Now returns an HLC larger than every one issued or observed before.
func (c *hlcClock) Now() HLC {
	phys := HLC(c.now().UnixMilli()) << hlcLogicalBits
	c.mu.Lock()
	defer c.mu.Unlock()
	if phys > c.last {
		c.last = phys
	} else {
		c.last++
	}
	return c.last
}

// Observe moves the clock past a remote HLC so later local writes order
// after it.
func (c *hlcClock) Observe(h HLC) {
	c.mu.Lock()
	if h > c.last {
		c.last = h
	}
	c.mu.Unlock()
}

// interner maps low-cardinality strings (User-Agent, Path, local socket,
// node ID) to small integers, so a million bindings from a few hundred phone
// models hold each User-Agent once. IDs start at 1; 0 means "not interned"
// and the string is kept inline in the binding instead. The table is capped
// so a flood of unique values cannot grow it without bound; past the cap
// values stay inline.
//
// Reads are lock-free: the table is an append-only slice of chunks published
// through an atomic pointer.
type interner struct {
	mu     sync.Mutex
	ids    map[string]uint32
	chunks atomic.Pointer[[]*[internChunk]string]
	n      uint32
	max    uint32
}

const internChunk = 1024

func newInterner(max int) *interner {
	in := &interner{ids: make(map[string]uint32), max: uint32(max)}
	in.chunks.Store(&[]*[internChunk]string{})
	return in
}

// id returns s's ID, adding it when there is room; 0 when s is empty or the
// table is full.
func (in *interner) id(s string) uint32 {
	if s == "" {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if id, ok := in.ids[s]; ok {
		return id
	}
	if in.n >= in.max {
		return 0
	}
	s = strings.Clone(s) // s may alias a message buffer
	in.n++
	id := in.n
	idx := id - 1
	chunks := *in.chunks.Load()
	if int(idx/internChunk) == len(chunks) {
		grown := make([]*[internChunk]string, len(chunks)+1)
		copy(grown, chunks)
		grown[len(chunks)] = new([internChunk]string)
		in.chunks.Store(&grown)
		chunks = grown
	}
	// The slot is written before any reader can learn the ID: IDs reach
	// readers only through a binding published under a shard lock.
	chunks[idx/internChunk][idx%internChunk] = s
	in.ids[s] = id
	return id
}

// str returns the string of an ID from id.
func (in *interner) str(id uint32) string {
	if id == 0 {
		return ""
	}
	idx := id - 1
	chunks := *in.chunks.Load()
	if int(idx/internChunk) >= len(chunks) {
		return ""
	}
	return chunks[idx/internChunk][idx%internChunk]
}
