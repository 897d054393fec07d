package usrloc

import (
	"strings"
	"sync"
	"sync/atomic"
)

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
