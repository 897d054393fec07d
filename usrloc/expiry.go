package usrloc

import "time"

// expEntry schedules a check of one binding at its expiry. Entries are not
// removed when a binding is refreshed: the check finds the binding's expiry
// moved and skips it (lazy deletion), which keeps writes O(log n).
//
// An entry names its AOR by hash, not by string: the heap holds no
// pointer for the collector to follow, and the AOR is not kept twice. A
// hash shared by two AORs can only make a check remove a binding of the
// other AOR whose deadline and binding key are equal, and due: it would
// be removed at this tick anyway.
type expEntry struct {
	at int64
	kh uint64 // the binding's keyHash
	h  uint64 // the AOR's hash
}

// expHeap is a binary min-heap by deadline. It is written out rather than
// built on container/heap, whose Push and Pop box every entry into an
// interface: one allocation per write of a binding.
type expHeap []expEntry

func (h *expHeap) push(e expEntry) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].at <= q[i].at {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

// pop removes and returns the earliest entry; h must not be empty.
func (h *expHeap) pop() expEntry {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = expEntry{}
	q = q[:n]
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && q[c+1].at < q[c].at {
			c++
		}
		if q[i].at <= q[c].at {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	*h = q
	return top
}

// expireLoop removes expired bindings and purges old tombstones. Each shard
// keeps a min-heap of deadlines and publishes the earliest, so a tick costs
// one atomic load per shard plus the work due, never a scan of bindings.
func (s *Store) expireLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpiryResolution)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			now := s.now().UnixNano()
			s.coarse.Store(now)
			s.expireDue(now)
		}
	}
}

// expireDue processes every deadline at or before now.
func (s *Store) expireDue(now int64) {
	var evs []Event
	for i := range s.shards {
		sh := &s.shards[i]
		if n := sh.next.Load(); n == 0 || n > now {
			continue
		}
		sh.mu.Lock()
		for len(sh.exp) > 0 && sh.exp[0].at <= now {
			e := sh.exp.pop()
			// Most entries are stale (the binding was refreshed): find
			// the due binding before copying its AOR out of the table.
			for {
				var aor string
				sh.aors.matchHash(e.h, func(sl *slot) bool {
					if dueIndex(&sl.head, sl.tail(), &e) < 0 {
						return true
					}
					aor = string(sl.appendKey(nil))
					return false
				})
				if aor == "" {
					break
				}
				var buf [entryBuf]rec
				// The slot's own hash: it may be another AOR's that
				// shares the high half.
				ent, recs := entry(sh, bucketHash(aor), aor, &buf)
				ent.dur = aor // a copy already
				j := dueIndex(&recs[0], recs[1:], &e)
				recs, evs = s.removeAt(sh, &ent, recs, j, Expired, evs)
				sh.store(&ent, recs)
			}
		}
		if len(sh.exp) > 0 {
			sh.next.Store(sh.exp[0].at)
		} else {
			sh.next.Store(0)
		}
		// Under the lock, so watchers see one AOR's changes in order.
		s.emit(evs)
		evs = evs[:0]
		sh.mu.Unlock()
	}
}

// dueIndex returns the index of the binding e was scheduled for among
// head and tail (0 is head), or -1.
func dueIndex(head *rec, tail []rec, e *expEntry) int {
	due := func(r *rec) bool { return r.expires == e.at && r.keyHash() == e.kh }
	if due(head) {
		return 0
	}
	for i := range tail {
		if due(&tail[i]) {
			return 1 + i
		}
	}
	return -1
}
