package usrloc

import (
	"fmt"
	"math/rand/v2"
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
