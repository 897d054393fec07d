package usrloc

import (
	"container/heap"
	"time"
)

// expEntry schedules a check of one binding at its expiry. Entries are not
// removed when a binding is refreshed: the check finds the binding's expiry
// moved and skips it (lazy deletion), which keeps writes O(log n).
type expEntry struct {
	at  int64
	kh  uint64
	aor string // the map's copy
}

type expHeap []expEntry

func (h expHeap) Len() int           { return len(h) }
func (h expHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expHeap) Push(x any)        { *h = append(*h, x.(expEntry)) }
func (h *expHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expEntry{}
	*h = old[:len(old)-1]
	return e
}

func (h *expHeap) push(e expEntry) { heap.Push(h, e) }

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
			e := heap.Pop(&sh.exp).(expEntry)
			h := bucketHash(e.aor)
			if sh.aors.find(h, e.aor) == nil {
				continue
			}
			var buf [entryBuf]rec
			ent, recs := entry(sh, h, e.aor, &buf)
			for j := range recs {
				r := &recs[j]
				if r.expires != e.at || r.keyHash() != e.kh {
					continue
				}
				recs, evs = s.removeAt(sh, ent.key, recs, j, Expired, evs)
				sh.store(&ent, recs)
				break
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
