package usrloc

import (
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
type rec struct {
	blob    string
	end     [nSeg]uint16
	ua      uint32 // interned IDs; 0 = inline in blob (or empty)
	path    uint32
	socket  uint32
	node    uint32
	expires int64 // by this node's clock, Unix ns; for a tombstone: when it is purged
	hlc     HLC
	cseq    uint32
	regID   uint32
	q       uint16
	flags   uint16
}

func (r *rec) seg(i int) string {
	start := uint16(0)
	if i > 0 {
		start = r.end[i-1]
	}
	return r.blob[start:r.end[i]]
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
func (r *rec) digest(aor string, in *interner) uint64 {
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
	d.WriteString(in.str(r.node))
	return d.Sum64()
}

// newer reports whether a should replace b (both the same binding). Within
// one Call-ID the higher CSeq wins (RFC 3261 §10.3 step 7); otherwise the
// larger HLC, then the larger node ID, so every node picks the same winner.
// The Call-ID rule makes the order non-transitive only for three versions
// written concurrently on different nodes; pairwise merges still converge
// because a merge never creates a version, it only picks one of two.
func newer(a, b *rec, in *interner) bool {
	if a.cseq != b.cseq && a.seg(segCallID) == b.seg(segCallID) {
		return a.cseq > b.cseq
	}
	if a.hlc != b.hlc {
		return a.hlc > b.hlc
	}
	if a.node != b.node {
		return in.str(a.node) > in.str(b.node)
	}
	// Same stamp from the same node: the same write. A tombstone wins so a
	// delete is never undone by a replay of what it deleted.
	return a.tombstone() && !b.tombstone()
}
