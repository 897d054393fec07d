package dialog

import (
	"container/heap"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

func nodeResource(n cluster.NodeID) string { return ownership.NodeResource(n) }

// timerHeap orders the dialogs this node owns by deadline. Each record is in
// it at most once (timerIdx), so an ended dialog leaves no entry behind.
type timerHeap []*record

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].timerAt < h[j].timerAt }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx, h[j].timerIdx = i, j
}
func (h *timerHeap) Push(x any) {
	r := x.(*record)
	r.timerIdx = len(*h)
	*h = append(*h, r)
}
func (h *timerHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.timerIdx, r.timerAt = -1, 0
	return r
}

func (h *timerHeap) remove(r *record) {
	if r.timerIdx >= 0 && r.timerIdx < len(*h) && (*h)[r.timerIdx] == r {
		heap.Remove(h, r.timerIdx)
	}
}

// heldRetry is how soon an owner action that found the lease lapsed (Held
// false while the watch still says held) is tried again.
const heldRetry = 20 * time.Millisecond

// schedule puts r's deadline in the heap. The caller holds the lock and
// owns r's origin.
func (t *Tracker) schedule(r *record) {
	at, _ := t.deadline(r)
	if at == 0 {
		t.timers.remove(r)
		return
	}
	t.arm(r, at)
}

// retryLocked puts r back in the heap heldRetry from now: its timer fired,
// or it ended, while this node's lease had lapsed for a moment. A lapse
// that the watch sees ends in Lost (which clears the origin's timers) and
// Acquired (which reschedules them and reports ended dialogs); one too
// short for the watch to see ends in neither, and without the retry the
// timer or the terminate hook would be lost until the next takeover.
func (t *Tracker) retryLocked(r *record) {
	if _, held := t.held[r.origin]; held && r.timerIdx < 0 {
		t.arm(r, t.now()+int64(heldRetry))
	}
}

// arm puts r in the heap at at.
func (t *Tracker) arm(r *record, at int64) {
	if r.timerIdx >= 0 {
		if r.timerAt == at {
			return
		}
		r.timerAt = at
		heap.Fix(&t.timers, r.timerIdx)
	} else {
		r.timerAt = at
		heap.Push(&t.timers, r)
	}
	if t.timers[0] == r {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// timerLoop fires due timers, drops old tombstones, sends heartbeats and
// retries resyncs.
func (t *Tracker) timerLoop() {
	defer t.wg.Done()
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	nextBeat := t.cfg.Now()
	type due struct {
		id     ID
		origin cluster.NodeID
	}
	var fire []due
	for {
		now := t.cfg.Now()
		if t.tr != nil && !now.Before(nextBeat) {
			t.broadcast(appendPing(nil))
			t.retrySync(now)
			nextBeat = now.Add(t.cfg.Heartbeat)
		}
		t.mu.Lock()
		ns := now.UnixNano()
		for len(t.timers) > 0 && t.timers[0].timerAt <= ns {
			r := heap.Pop(&t.timers).(*record)
			fire = append(fire, due{r.id, r.origin})
		}
		t.gcLocked(ns)
		wait := time.Hour
		if len(t.timers) > 0 {
			wait = time.Duration(t.timers[0].timerAt - ns)
		}
		if len(t.tombs) > 0 {
			wait = min(wait, time.Duration(t.tombs[0].gcAt-ns))
		}
		t.mu.Unlock()
		for _, d := range fire {
			t.expire(d.id, d.origin)
		}
		clear(fire)
		fire = fire[:0]
		if t.tr != nil {
			wait = min(wait, nextBeat.Sub(now))
		}
		tm.Reset(max(wait, time.Millisecond))
		select {
		case <-t.quit:
			return
		case <-t.wake:
		case <-tm.C:
		}
	}
}

// onOwnership follows the node resources: on Acquired this node takes over
// the timers and pending terminate hooks of that node's dialogs; on Lost it
// stops them at once.
func (t *Tracker) onOwnership(ev ownership.Event) {
	origin := cluster.NodeID(ev.Resource[len(ownership.KindNode)+1:])
	var todo []*effects
	var takeover []byte
	var adoptMsgs [][]byte
	t.mu.Lock()
	if ev.Claim.Epoch > 0 && uint64(ev.Claim.Epoch) > t.maxEpoch[origin] {
		t.maxEpoch[origin] = uint64(ev.Claim.Epoch)
	}
	switch ev.Kind {
	case ownership.Acquired:
		t.held[origin] = heldRes{uint64(ev.Claim.Epoch), ev.Resource}
		t.stats.takeovers.Add(1)
		ep := uint64(ev.Claim.Epoch)
		var adopted []*record
		for _, r := range t.dialogs {
			if r.origin != origin {
				continue
			}
			if r.live() {
				if r.adopt < ep {
					// Stamp the takeover on the dialog, so a late timer
					// action of the previous owner is fenced.
					r.adopt = ep
					adopted = append(adopted, r)
				}
				t.schedule(r)
			} else if !r.has(flagReported) {
				if e := t.after(r, nil, r.state, false); e != nil {
					todo = append(todo, e)
				}
			}
		}
		if t.tr != nil {
			takeover = appendTakeover(nil, origin, ep)
			// In batches: chunks of session 0, which no resync uses.
			adoptMsgs = encodeChunks(0, adopted)
		}
	case ownership.Lost:
		delete(t.held, origin)
		var keep timerHeap
		for _, r := range t.timers {
			if r.origin == origin {
				r.timerIdx, r.timerAt = -1, 0
			} else {
				keep = append(keep, r)
			}
		}
		for i, r := range keep {
			r.timerIdx = i
		}
		t.timers = keep
		heap.Init(&t.timers)
	}
	t.mu.Unlock()
	if takeover != nil {
		t.broadcast(takeover)
	}
	for _, m := range adoptMsgs {
		t.broadcast(m)
	}
	for _, e := range todo {
		t.run(e)
	}
}
