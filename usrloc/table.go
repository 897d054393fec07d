package usrloc

import (
	"encoding/binary"
	"unsafe"
)

// aorTable is one shard's AOR index: open addressing with linear probing,
// keyed by the AOR's 64-bit xxhash, with the hash, the AOR's bytes (when
// they fit) and the first binding stored inline in the slot. A lookup of a
// one-binding AOR with a short AOR reads the shard and one 128-byte slot
// (two adjacent cache lines, one page), nothing else: Go's map took four
// more dependent reads (map header, directory, table, group) before
// reaching the slot, and a key held as a string one more after it, each a
// cache and TLB miss at a million AORs.
//
// Deletion shifts the following run back (no tombstones), so a probe ends
// at the first empty slot. Pointers into the table are valid until the
// next insert or remove.
type aorTable struct {
	slots []slot // len is 0 or a power of two
	n     int
}

// slotKeyMax is the longest AOR kept inline; longer ones are a copy of
// their own behind slot.long. Realistic AORs ("sip:user0000001@voip.example.com") are
// about 30 bytes; E.164 ones with a carrier's domain about 40.
const slotKeyMax = 43

// longKey in slot.klen marks an AOR kept behind slot.long; its length is
// in kbuf's first four bytes.
const longKey = 0xff

// slot holds one AOR: its bytes and first binding inline and the rest
// behind more. Most AORs are short and hold one binding, so a lookup needs
// no read beyond the slot, and the table holds no pointer but the
// binding's blob: one heap object per binding for the collector to mark.
// A longer AOR costs one read more (its bytes), as every AOR did when the
// table held strings. 128 bytes, so a slot never straddles more than two
// cache lines.
//
// Readers see the AOR only as bytes in the table; a string that must
// outlive the shard lock (events, sync chunks) is copied out (aorEntry.key,
// collectAORs).
type slot struct {
	hi   uint32 // the hash's high half: the probe's home and a quick reject
	klen uint8  // 0: empty slot (an AOR is never empty); longKey: see more
	kbuf [slotKeyMax]byte
	head rec
	more *slotMore
	long *byte // a long AOR's bytes, never written after set; else nil
}

// slotMore holds the bindings after the first. Writers reuse it in
// place: readers copy under the read lock, so none can hold it across a
// write.
type slotMore struct {
	tail []rec
}

// tail returns the bindings after the first.
func (sl *slot) tail() []rec {
	if sl.more == nil {
		return nil
	}
	return sl.more.tail
}

// is reports whether sl holds key, whose hash's high half is hi.
func (sl *slot) is(hi uint32, key string) bool {
	if sl.hi != hi {
		return false
	}
	if sl.klen == longKey {
		return sl.longKey() == key
	}
	return int(sl.klen) == len(key) && string(sl.kbuf[:sl.klen]) == key
}

// longKey returns a long AOR: a string that outlives the shard lock. It
// is "" for a short one.
func (sl *slot) longKey() string {
	if sl.klen != longKey {
		return ""
	}
	return unsafe.String(sl.long, binary.LittleEndian.Uint32(sl.kbuf[:4]))
}

// keyLen is the length of sl's AOR.
func (sl *slot) keyLen() int {
	if sl.klen == longKey {
		return int(binary.LittleEndian.Uint32(sl.kbuf[:4]))
	}
	return int(sl.klen)
}

// appendKey appends sl's AOR to dst.
func (sl *slot) appendKey(dst []byte) []byte {
	if sl.klen == longKey {
		return append(dst, sl.longKey()...)
	}
	return append(dst, sl.kbuf[:sl.klen]...)
}

// tableMinSize is the first allocation: most shards of a small store hold
// a handful of AORs.
const tableMinSize = 8

func hashHi(h uint64) uint32 { return uint32(h >> 32) }

// home is the first probe position of a slot whose hash's high half is hi.
// The low bits of the hash chose the shard, so the position uses the high
// ones.
func (t *aorTable) home(hi uint32) int { return int(hi) & (len(t.slots) - 1) }

// find returns the slot of key (whose hash is h), or nil.
func (t *aorTable) find(h uint64, key string) *slot {
	if i := t.index(hashHi(h), key); i >= 0 {
		return &t.slots[i]
	}
	return nil
}

// index returns the position of key, or -1.
func (t *aorTable) index(hi uint32, key string) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for i := t.home(hi); ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.klen == 0 {
			return -1
		}
		if sl.is(hi, key) {
			return i
		}
	}
}

// matchHash calls fn for each slot whose hash shares h's high half, until
// fn returns false. More than one slot matches only when two AORs of a
// shard collide in 44 bits of hash. fn must not insert or remove.
func (t *aorTable) matchHash(h uint64, fn func(*slot) bool) {
	if len(t.slots) == 0 {
		return
	}
	hi, mask := hashHi(h), len(t.slots)-1
	for i := t.home(hi); t.slots[i].klen != 0; i = (i + 1) & mask {
		if t.slots[i].hi == hi && !fn(&t.slots[i]) {
			return
		}
	}
}

// set stores head and more as key's (hash h) bindings, adding the AOR if
// it is new. For a key longer than slotKeyMax, long is a copy of it that
// is never written.
func (t *aorTable) set(h uint64, key string, head rec, more *slotMore, long string) {
	hi := hashHi(h)
	if i := t.index(hi, key); i >= 0 {
		t.slots[i].head, t.slots[i].more = head, more
		return
	}
	// Grow at 3/4 full: linear probing's probe runs lengthen fast beyond.
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := len(t.slots) - 1
	i := t.home(hi)
	for t.slots[i].klen != 0 {
		i = (i + 1) & mask
	}
	sl := &t.slots[i]
	sl.hi, sl.head, sl.more = hi, head, more
	if len(key) > slotKeyMax {
		sl.klen = longKey
		sl.long = unsafe.StringData(long)
		binary.LittleEndian.PutUint32(sl.kbuf[:4], uint32(len(long)))
	} else {
		sl.klen = uint8(copy(sl.kbuf[:], key))
	}
	t.n++
}

// reserve makes room for n AORs in all at once, so a bulk insert (a join's
// chunk) rehashes once instead of at every doubling. It counts the AORs
// already held as part of n: a node that restarted from its file and
// joins again holds most of what the donor sends.
func (t *aorTable) reserve(n int) {
	size := max(len(t.slots), tableMinSize)
	for n*4 > size*3 {
		size *= 2
	}
	if size > len(t.slots) {
		t.resize(size)
	}
}

func (t *aorTable) grow() { t.resize(max(2*len(t.slots), tableMinSize)) }

func (t *aorTable) resize(size int) {
	old := t.slots
	t.slots = make([]slot, size)
	mask := size - 1
	for k := range old {
		if old[k].klen == 0 {
			continue
		}
		i := t.home(old[k].hi)
		for t.slots[i].klen != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = old[k]
	}
}

// remove deletes key (hash h) if present.
func (t *aorTable) remove(h uint64, key string) {
	i := t.index(hashHi(h), key)
	if i < 0 {
		return
	}
	mask := len(t.slots) - 1
	// Backward-shift deletion: move each later member of the run into the
	// hole unless its home lies cyclically in (hole, j].
	for j := (i + 1) & mask; t.slots[j].klen != 0; j = (j + 1) & mask {
		k := t.home(t.slots[j].hi)
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = slot{}
	t.n--
	if t.n == 0 {
		t.slots = nil // an emptied shard gives its memory back
	}
}

// all calls fn for every slot until fn returns false. fn must not insert
// or remove.
func (t *aorTable) all(fn func(*slot) bool) {
	for i := range t.slots {
		if t.slots[i].klen != 0 && !fn(&t.slots[i]) {
			return
		}
	}
}

// collectAORs calls add for every binding of t, head first, and sets the
// AOR of each element add appended to a copy that outlives the shard
// lock. The copies share one allocation per table, sized in a first pass,
// rather than one per AOR: a join's donor reads every table once. The
// shard lock must be held.
func collectAORs[T any](t *aorTable, dst []T, add func([]T, *rec) []T, setAOR func(*T, string)) []T {
	size := 0
	t.all(func(sl *slot) bool {
		size += sl.keyLen()
		return true
	})
	keys := make([]byte, 0, size)
	t.all(func(sl *slot) bool {
		from := len(dst)
		dst = add(dst, &sl.head)
		tail := sl.tail()
		for i := range tail {
			dst = add(dst, &tail[i])
		}
		if len(dst) == from {
			return true
		}
		start := len(keys)
		keys = sl.appendKey(keys) // within cap: keys never moves
		// The bytes of aor are written once, before it exists, and
		// never again (the strings.Builder pattern).
		aor := unsafe.String(&keys[start], len(keys)-start)
		for i := from; i < len(dst); i++ {
			setAOR(&dst[i], aor)
		}
		return true
	})
	return dst
}
