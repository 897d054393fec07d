package partition

import "math/bits"

// keyTable maps the committed keys to their rows in the rank table. It is
// an open-addressing table on the key's xxhash — the hash placement
// computes anyway — so a lookup hashes the key once, and a miss (a key
// outside the committed set, about to be scored on the fly) costs a probe
// or two rather than a full map probe.
type keyTable struct {
	slots []slot // power-of-two length, at most half full
	keys  []string
}

type slot struct {
	h   uint64
	row int32 // row+1; 0 marks an empty slot
}

func newKeyTable(n int) keyTable {
	size := 1 << bits.Len(uint(2*n))
	return keyTable{slots: make([]slot, size), keys: make([]string, n)}
}

// put records key (hash h) at row; keys are unique.
func (t *keyTable) put(h uint64, key string, row int) {
	t.keys[row] = key
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if t.slots[i].row == 0 {
			t.slots[i] = slot{h: h, row: int32(row) + 1}
			return
		}
	}
}

// get returns key's row.
func (t *keyTable) get(h uint64, key string) (int, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s.row == 0 {
			return 0, false
		}
		if s.h == h && t.keys[s.row-1] == key {
			return int(s.row - 1), true
		}
	}
}
