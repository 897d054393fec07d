package usrloc

import (
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/sipha/sipha/cluster"
)

// nBuckets is the number of shards of a store. A shard is also the unit of
// anti-entropy digests and of sync chunks, so every node must use the same
// number: it is part of the replication protocol.
const nBuckets = 4096

// maxNodes bounds the distinct node IDs a store keeps (its own and every
// peer's that ever wrote a binding).
const maxNodes = 1 << 12

// Store is the location service: address of record → bindings, sharded by
// an xxhash of the AOR. It is safe for concurrent use; reads take one shard
// read lock and allocate nothing when the caller's slice has room.
type Store struct {
	// shards comes first so that it starts on a page boundary (a Store is
	// a large allocation) and each 128-byte shard on a cache line pair.
	shards [nBuckets]shard

	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	clock hlcClock
	in    *interner
	// nodes interns node IDs apart from in, so a flood of unique
	// User-Agents filling in can never lock a new peer's bindings out.
	nodes  *interner
	nodeID uint32

	watchers atomic.Pointer[[]*watcher]
	wmu      sync.Mutex

	// onLocal, when set (by a Replicator), receives every change made by
	// this node, after the shard lock is released.
	onLocal atomic.Pointer[func(aor string, r rec)]

	live   atomic.Int64 // bindings that are not tombstones
	coarse atomic.Int64 // the clock as of the last expiry tick, Unix ns

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type shard struct {
	mu   sync.RWMutex
	aors aorTable
	exp  expHeap
	next atomic.Int64 // earliest pending expiry, Unix ns; 0 = none
	// Digest of the shard as one anti-entropy bucket.
	count uint32
	sum   uint64
	// A lookup reads mu and aors.slots: with the padding they share the
	// shard's first cache line.
	_ [24]byte
}

// New starts a store; Close stops its expiry goroutine.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{cfg: cfg, log: cfg.Logger, now: cfg.Now, in: newInterner(cfg.InternMax), nodes: newInterner(maxNodes), quit: make(chan struct{})}
	s.clock.now = cfg.Now
	s.nodeID = s.nodes.id(string(cfg.Node))
	s.watchers.Store(&[]*watcher{})
	s.coarse.Store(cfg.Now().UnixNano())
	s.wg.Add(1)
	go s.expireLoop()
	return s, nil
}

// Close stops the store's goroutines and its watchers. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.wg.Wait()
		s.wmu.Lock()
		ws := *s.watchers.Load()
		s.watchers.Store(&[]*watcher{})
		s.wmu.Unlock()
		for _, w := range ws {
			w.stop()
		}
	})
	return nil
}

// Node is the ID this store stamps on local writes.
func (s *Store) Node() cluster.NodeID { return s.cfg.Node }

// Len is the number of live bindings.
func (s *Store) Len() int { return int(s.live.Load()) }

func bucketOf(aor string) int { return int(bucketHash(aor) & (nBuckets - 1)) }

func bucketHash(aor string) uint64 { return xxhash.Sum64String(aor) }

// shardOf returns aor's shard and hash.
func (s *Store) shardOf(aor string) (*shard, uint64) {
	h := bucketHash(aor)
	return &s.shards[h&(nBuckets-1)], h
}

// Lookup appends the live bindings of aor to dst, best first: highest q,
// then the most recently written. It allocates only when dst must grow.
// The bindings' AOR is aor itself; their other strings are the store's.
//
// It reads the clock of the expiry timer, not the system clock, so a
// binding may show for up to Config.ExpiryResolution past its expiry, as
// long as it would before the timer removed it; Binding.Expires is exact.
func (s *Store) Lookup(aor string, dst []Binding) []Binding {
	sh, h := s.shardOf(aor)
	now := s.coarse.Load()
	sh.mu.RLock()
	if sl := sh.aors.find(h, aor); sl != nil {
		dst = s.appendLive(dst, aor, &sl.head, now)
		if sl.more != nil {
			for i := range sl.more.tail {
				dst = s.appendLive(dst, aor, &sl.more.tail[i], now)
			}
		}
	}
	sh.mu.RUnlock()
	return dst
}

func (s *Store) appendLive(dst []Binding, aor string, r *rec, now int64) []Binding {
	if r.tombstone() || r.expires <= now {
		return dst
	}
	dst = append(dst, Binding{})
	s.fill(&dst[len(dst)-1], aor, r)
	return dst
}

// fill sets b from r without allocating: b's strings share r's memory.
func (s *Store) fill(b *Binding, aor string, r *rec) {
	b.AOR = aor
	b.Contact = r.seg(segContact)
	b.Received = r.seg(segReceived)
	b.CallID = r.seg(segCallID)
	b.Instance = r.seg(segInstance)
	b.UserAgent = s.pick(r.ua, r, segUA)
	b.Path = s.pick(r.path, r, segPath)
	b.Socket = s.pick(r.socket, r, segSocket)
	b.Node = cluster.NodeID(s.nodes.str(uint32(r.node)))
	b.RegID = r.regID
	b.Q = r.q
	b.CSeq = r.cseq
	b.Flags = uint8(r.flags)
	b.Version = r.hlc
	b.Expires = time.Unix(0, r.expires)
}

func (s *Store) pick(id uint32, r *rec, seg int) string {
	if id != 0 {
		return s.in.str(id)
	}
	return r.seg(seg)
}

// fields are the strings and numbers of a binding before they are packed
// into a rec.
type fields struct {
	Contact, Received, CallID, Instance, UserAgent, Path, Socket string
	RegID, CSeq                                                  uint32
	Q                                                            uint16
	Flags                                                        uint8
}

// pack builds a rec; it copies every string, so f may alias a buffer that
// is reused afterwards.
func (s *Store) pack(f *fields, expires int64, hlc HLC, node uint32, tomb bool) (rec, error) {
	r := rec{expires: expires, hlc: hlc, node: uint16(node), cseq: f.CSeq, regID: f.RegID, q: f.Q, flags: uint16(f.Flags)}
	if tomb {
		r.flags |= flagTombstone
	}
	segs := [nSeg]string{f.Contact, f.Received, f.CallID, f.Instance, "", "", ""}
	if !tomb {
		if r.ua = s.in.id(f.UserAgent); r.ua == 0 {
			segs[segUA] = f.UserAgent
		}
		if r.path = s.in.id(f.Path); r.path == 0 {
			segs[segPath] = f.Path
		}
		if r.socket = s.in.id(f.Socket); r.socket == 0 {
			segs[segSocket] = f.Socket
		}
	} else {
		segs[segReceived] = ""
	}
	n := 0
	for _, x := range segs {
		n += len(x)
	}
	if n > maxBlob {
		return rec{}, ErrTooLarge
	}
	buf := make([]byte, 0, n)
	for i, x := range segs {
		buf = append(buf, x...)
		r.end[i] = uint16(len(buf))
	}
	if n > 0 {
		r.blob = unsafe.SliceData(buf) // buf is not written again
	}
	return r, nil
}

// findKey returns the index of the binding with r's key in recs, or -1.
func findKey(recs []rec, r *rec) int {
	for i := range recs {
		if recs[i].sameKey(r) {
			return i
		}
	}
	return -1
}

// before orders the bindings of an AOR: live ones first, by q descending,
// then newest first.
func before(a, b *rec) bool {
	if a.tombstone() != b.tombstone() {
		return !a.tombstone()
	}
	if a.q != b.q {
		return a.q > b.q
	}
	return a.hlc > b.hlc
}

// put replaces recs[i] (i < 0: adds) with r keeping the order, and keeps
// the digest, live count and expiry heap. sh.mu must be held.
func (s *Store) put(sh *shard, e *aorEntry, recs []rec, i int, r rec) []rec {
	aor := e.aor
	if i >= 0 {
		s.unaccount(sh, aor, &recs[i])
		recs = append(recs[:i], recs[i+1:]...)
	}
	j := 0
	for j < len(recs) && before(&recs[j], &r) {
		j++
	}
	if len(recs) == cap(recs) {
		// Grow by one: most AORs hold one or two bindings.
		grown := make([]rec, len(recs), len(recs)+1)
		copy(grown, recs)
		recs = grown
	}
	recs = append(recs, rec{})
	copy(recs[j+1:], recs[j:])
	recs[j] = r
	s.account(sh, aor, &recs[j])
	sh.exp.push(expEntry{at: r.expires, kh: r.keyHash(), h: e.hash})
	if n := sh.next.Load(); n == 0 || r.expires < n {
		sh.next.Store(r.expires)
	}
	return recs
}

// drop removes recs[i]. sh.mu must be held.
func (s *Store) drop(sh *shard, aor string, recs []rec, i int) []rec {
	s.unaccount(sh, aor, &recs[i])
	copy(recs[i:], recs[i+1:])
	recs[len(recs)-1] = rec{}
	return recs[:len(recs)-1]
}

// removeAt drops recs[i] of e, with an event of kind for the watchers
// when it was a live binding. sh.mu must be held.
func (s *Store) removeAt(sh *shard, e *aorEntry, recs []rec, i int, kind EventKind, evs []Event) ([]rec, []Event) {
	r := &recs[i]
	if !r.tombstone() && s.hasWatchers() {
		ev := Event{Kind: kind}
		s.fill(&ev.Binding, e.key(), r)
		evs = append(evs, ev)
	}
	return s.drop(sh, e.aor, recs, i), evs
}

func (s *Store) account(sh *shard, aor string, r *rec) {
	sh.count++
	sh.sum += r.digest(aor, s.nodes)
	if !r.tombstone() {
		s.live.Add(1)
	}
}

func (s *Store) unaccount(sh *shard, aor string, r *rec) {
	sh.count--
	sh.sum -= r.digest(aor, s.nodes)
	if !r.tombstone() {
		s.live.Add(-1)
	}
}

// aorEntry is a slot opened by a writer; its bindings are a working copy
// kept apart (see entry).
type aorEntry struct {
	hash uint64
	aor  string    // the writer's: valid while the shard lock is held
	more *slotMore // the slot's, reused by store; nil when it has none
	dur  string    // a copy of aor that may outlive the lock, made on first use
}

// key returns the AOR as a string that may outlive the shard lock (events
// queue it): a long AOR's own copy, else a copy made once per write.
// Only writes that have watchers pay for it.
func (e *aorEntry) key() string {
	if e.dur == "" {
		e.dur = strings.Clone(e.aor)
	}
	return e.dur
}

// entryBuf bindings fit the working copy without an allocation; more
// spill to the heap.
const entryBuf = 4

// entry opens the slot of aor (hash h) for a writer, or an empty entry,
// and returns a working copy of its bindings in buf. The copy is returned
// apart from the entry so that buf can stay on the writer's stack: escape
// analysis is not field-sensitive, and the key escapes into events. aor is
// only read while sh.mu is held, so it may alias a message buffer.
func entry(sh *shard, h uint64, aor string, buf *[entryBuf]rec) (aorEntry, []rec) {
	sl := sh.aors.find(h, aor)
	if sl == nil {
		return aorEntry{hash: h, aor: aor}, buf[:0]
	}
	tail := sl.tail()
	recs := buf[:0]
	if 1+len(tail) > entryBuf {
		recs = make([]rec, 0, 2+len(tail))
	}
	recs = append(recs, sl.head)
	recs = append(recs, tail...)
	return aorEntry{hash: h, aor: aor, more: sl.more, dur: sl.longKey()}, recs
}

// store saves recs as e's bindings, deleting e when there are none. The
// tail is copied (into the old tail's array when it fits: no reader can
// hold it, a reader copies under the read lock), never aliased, since recs
// may live on the writer's stack.
func (sh *shard) store(e *aorEntry, recs []rec) {
	if len(recs) == 0 {
		sh.aors.remove(e.hash, e.aor)
		return
	}
	more := e.more
	if more == nil && len(recs) > 1 {
		more = &slotMore{}
	}
	if n := len(recs) - 1; n > 0 {
		tail := more.tail
		if cap(tail) < n || cap(tail) > 2*n+2 {
			tail = make([]rec, n)
		}
		clear(tail[n:cap(tail)]) // no stale blob kept alive past len
		tail = tail[:n]
		copy(tail, recs[1:])
		more.tail = tail
	} else {
		more = nil
	}
	long := ""
	if len(e.aor) > slotKeyMax {
		long = e.key()
	}
	sh.aors.set(e.hash, e.aor, recs[0], more, long)
}

// reserve prepares bucket b for n AORs (see aorTable.reserve).
func (s *Store) reserve(b, n int) {
	sh := &s.shards[b]
	sh.mu.Lock()
	sh.aors.reserve(n)
	if free := cap(sh.exp) - len(sh.exp); free < n {
		// Each binding merged pushes an expiry entry: grow once rather
		// than by doubling, which leaves the old arrays (of pointers)
		// for the collector.
		sh.exp = slices.Grow(sh.exp, n)
	}
	sh.mu.Unlock()
}

func (s *Store) setOnLocal(fn func(aor string, r rec)) {
	if fn == nil {
		s.onLocal.Store(nil)
		return
	}
	s.onLocal.Store(&fn)
}
