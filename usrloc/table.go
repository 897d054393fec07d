package usrloc

// aorTable is one shard's AOR index: open addressing with linear probing,
// keyed by the AOR's 64-bit xxhash, with the hash, the AOR and the first
// binding stored inline in the slot. A lookup of a one-binding AOR reads
// the shard, one 128-byte slot (two adjacent cache lines, one page) and
// the AOR's bytes to confirm the match; Go's map took four more dependent
// reads (map header, directory, table, group) before reaching the slot,
// which at a million AORs are cache and TLB misses each.
//
// Deletion shifts the following run back (no tombstones), so a probe ends
// at the first empty slot. Pointers into the table are valid until the
// next insert or remove.
type aorTable struct {
	slots []slot // len is 0 or a power of two
	n     int
}

// slot holds one AOR: its first binding inline and the others behind.
// Most AORs hold one binding, so a lookup needs no further read. 128 bytes,
// so a slot never straddles more than two cache lines.
//
// key is the table's own copy of the AOR (heap entries share it, so the
// AOR is held once); writers store under it, never under a caller's
// string, which may alias a SIP message buffer.
type slot struct {
	hash uint64
	key  string // "" = empty slot (an AOR is never empty)
	head rec
	tail []rec
}

// tableMinSize is the first allocation: most shards of a small store hold
// a handful of AORs.
const tableMinSize = 8

// home is h's first probe position. The low bits of h chose the shard, so
// the position uses the high ones.
func (t *aorTable) home(h uint64) int { return int(h>>32) & (len(t.slots) - 1) }

// find returns the slot of key (whose hash is h), or nil.
func (t *aorTable) find(h uint64, key string) *slot {
	if i := t.index(h, key); i >= 0 {
		return &t.slots[i]
	}
	return nil
}

// index returns the position of key (whose hash is h), or -1.
func (t *aorTable) index(h uint64, key string) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for i := t.home(h); ; i = (i + 1) & mask {
		sl := &t.slots[i]
		if sl.key == "" {
			return -1
		}
		if sl.hash == h && sl.key == key {
			return i
		}
	}
}

// set stores sl, replacing the slot with the same key if there is one.
func (t *aorTable) set(sl slot) {
	if p := t.find(sl.hash, sl.key); p != nil {
		*p = sl
		return
	}
	// Grow at 3/4 full: linear probing's probe runs lengthen fast beyond.
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := len(t.slots) - 1
	i := t.home(sl.hash)
	for t.slots[i].key != "" {
		i = (i + 1) & mask
	}
	t.slots[i] = sl
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
		if old[k].key == "" {
			continue
		}
		i := t.home(old[k].hash)
		for t.slots[i].key != "" {
			i = (i + 1) & mask
		}
		t.slots[i] = old[k]
	}
}

// remove deletes key (hash h) if present.
func (t *aorTable) remove(h uint64, key string) {
	i := t.index(h, key)
	if i < 0 {
		return
	}
	mask := len(t.slots) - 1
	// Backward-shift deletion: move each later member of the run into the
	// hole unless its home lies cyclically in (hole, j].
	for j := (i + 1) & mask; t.slots[j].key != ""; j = (j + 1) & mask {
		k := t.home(t.slots[j].hash)
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
		if t.slots[i].key != "" && !fn(&t.slots[i]) {
			return
		}
	}
}
