package usrloc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// TestSlotSize: a slot must stay 128 bytes, two cache lines, or a lookup
// touches a third line (see aorTable).
func TestSlotSize(t *testing.T) {
	if n := unsafe.Sizeof(slot{}); n != 128 {
		t.Fatalf("slot is %d bytes, want 128", n)
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
			tab.set(slot{hash: h, key: k, head: rec{cseq: uint32(step)}})
			want[k] = h
		}
		if tab.n != len(want) {
			t.Fatalf("step %d: table holds %d, map %d", step, tab.n, len(want))
		}
		if step%97 == 0 || tab.n < 20 {
			for _, k := range keys {
				_, in := want[k]
				if got := tab.find(hashOf[k], k) != nil; got != in {
					t.Fatalf("step %d: find(%s) = %v, want %v", step, k, got, in)
				}
			}
			seen := 0
			tab.all(func(sl *slot) bool { seen++; return true })
			if seen != len(want) {
				t.Fatalf("step %d: all visits %d, want %d", step, seen, len(want))
			}
		}
	}
	// A same-hash different key is not a match.
	tab.set(slot{hash: 5, key: "sip:a@x"})
	if tab.find(5, "sip:b@x") != nil {
		t.Fatal("a key sharing a hash matched another key")
	}
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
	tab.set(slot{hash: 1 << 32, key: "sip:first@x"})
	tab.reserve(1001)
	size := len(tab.slots)
	if size*3 < 1001*4 {
		t.Fatalf("reserve(1001) left %d slots", size)
	}
	for i := range 1000 {
		tab.set(slot{hash: uint64(i) << 32, key: fmt.Sprintf("sip:%d@x", i)})
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
