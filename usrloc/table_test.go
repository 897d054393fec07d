package usrloc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// TestSlotSize: a slot must stay 128 bytes, two cache lines, or a lookup
// touches a third line (see aorTable); the AOR's bytes share the first.
func TestSlotSize(t *testing.T) {
	var sl slot
	if n := unsafe.Sizeof(sl); n != 128 {
		t.Fatalf("slot is %d bytes, want 128 (rec %d)", n, unsafe.Sizeof(sl.head))
	}
	if n := unsafe.Sizeof(sl.head); n != 64 {
		t.Fatalf("rec is %d bytes, want 64", n)
	}
	if end := unsafe.Offsetof(sl.kbuf) + slotKeyMax; end > 64 {
		t.Fatalf("the AOR's bytes end at byte %d of the slot, past the first line", end)
	}
}

// TestTableMatchesMap drives an aorTable and a Go map with the same random
// inserts, replacements and removals and checks they agree after every
// step. Hashes are drawn from a few values so long probe runs, wrap-around
// at the table's end and backward shifts across it all occur.
func TestTableMatchesMap(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var tab aorTable
	want := map[string]uint64{} // key → hash
	hashOf := map[string]uint64{}
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = fmt.Sprintf("sip:%d@x", i)
		if i%3 == 0 { // long AORs live outside the slot
			keys[i] = fmt.Sprintf("sip:%d@%s", i, strings.Repeat("x", slotKeyMax))
		}
		// Few distinct homes; high bits choose the position.
		hashOf[keys[i]] = uint64(rng.IntN(7))<<32 | uint64(rng.IntN(3))<<62 | uint64(i)
	}
	for step := 0; step < 20000; step++ {
		k := keys[rng.IntN(len(keys))]
		h := hashOf[k]
		if rng.IntN(3) == 0 {
			tab.remove(h, k)
			delete(want, k)
		} else {
			setKey(&tab, h, k, rec{cseq: uint32(step)})
			want[k] = h
		}
		if tab.n != len(want) {
			t.Fatalf("step %d: table holds %d, map %d", step, tab.n, len(want))
		}
		if step%97 == 0 || tab.n < 20 {
			for _, k := range keys {
				_, in := want[k]
				sl := tab.find(hashOf[k], k)
				if got := sl != nil; got != in {
					t.Fatalf("step %d: find(%s) = %v, want %v", step, k, got, in)
				}
				if sl != nil && string(sl.appendKey(nil)) != k {
					t.Fatalf("step %d: find(%s) returned the slot of %s", step, k, sl.appendKey(nil))
				}
				matched := false
				tab.matchHash(hashOf[k], func(sl *slot) bool {
					matched = matched || string(sl.appendKey(nil)) == k
					return true
				})
				if matched != in {
					t.Fatalf("step %d: matchHash(%s) found it %v, want %v", step, k, matched, in)
				}
			}
			seen := 0
			tab.all(func(sl *slot) bool { seen++; return true })
			if seen != len(want) {
				t.Fatalf("step %d: all visits %d, want %d", step, seen, len(want))
			}
		}
	}
	// A same-hash different key is not a match, nor a prefix of it.
	setKey(&tab, 5<<32, "sip:a@x", rec{})
	for _, k := range []string{"sip:b@x", "sip:a@", "sip:a@xx"} {
		if tab.find(5<<32, k) != nil {
			t.Fatalf("%s matched sip:a@x, which shares its hash", k)
		}
	}

}

// setKey stores head as key's only binding, as shard.store does.
func setKey(t *aorTable, h uint64, key string, head rec) {
	long := ""
	if len(key) > slotKeyMax {
		long = strings.Clone(key)
	}
	t.set(h, key, head, nil, long)
}

// TestShardLayout: a shard is 128 bytes and the shards start the Store, so
// a lookup's lock and table pointer share one cache line.
func TestShardLayout(t *testing.T) {
	var s Store
	if n := unsafe.Sizeof(s.shards[0]); n != 128 {
		t.Fatalf("shard is %d bytes, want 128", n)
	}
	if off := unsafe.Offsetof(s.shards); off != 0 {
		t.Fatalf("shards at offset %d, want 0", off)
	}
	if end := unsafe.Offsetof(s.shards[0].aors) + unsafe.Sizeof(s.shards[0].aors.slots); end > 64 {
		t.Fatalf("the table's slice header ends at byte %d of the shard, past the first line", end)
	}
}

// TestTableReserve: after reserve(n), inserts up to n AORs do not move
// the slots, and a reserve for what the table holds already changes nothing.
func TestTableReserve(t *testing.T) {
	var tab aorTable
	setKey(&tab, 1<<32, "sip:first@x", rec{})
	tab.reserve(1001)
	size := len(tab.slots)
	if size*3 < 1001*4 {
		t.Fatalf("reserve(1001) left %d slots", size)
	}
	for i := range 1000 {
		setKey(&tab, uint64(i)<<32, fmt.Sprintf("sip:%d@x", i), rec{})
	}
	if len(tab.slots) != size || tab.n != 1001 {
		t.Fatalf("after 1000 inserts: %d slots (reserved %d), %d AORs", len(tab.slots), size, tab.n)
	}
	if tab.find(999<<32, "sip:999@x") == nil || tab.find(1<<32, "sip:first@x") == nil {
		t.Fatal("an AOR is missing after the reserved inserts")
	}
	tab.reserve(1001)
	if len(tab.slots) != size {
		t.Fatalf("reserve for the AORs held grew the table from %d to %d slots", size, len(tab.slots))
	}
}

// TestExpHeapOrder: pops come out by deadline whatever the pushes' order.
func TestExpHeapOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var h expHeap
	var want []int64
	for range 500 {
		at := rng.Int64N(1000)
		h.push(expEntry{at: at})
		want = append(want, at)
		if rng.IntN(3) == 0 { // interleave pops with pushes
			slices.Sort(want)
			if got := h.pop().at; got != want[0] {
				t.Fatalf("popped %d, want %d", got, want[0])
			}
			want = want[1:]
		}
	}
	slices.Sort(want)
	for _, w := range want {
		if got := h.pop().at; got != w {
			t.Fatalf("popped %d, want %d", got, w)
		}
	}
	if len(h) != 0 {
		t.Fatalf("%d entries left", len(h))
	}
}
