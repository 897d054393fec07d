package cluster

import (
	"sync"
	"time"
)

// heartbeatLoop pings every connected peer each HeartbeatInterval and runs
// the liveness timers. Checks run twice per interval so a deadline is missed
// by at most half an interval.
func (t *TCP) heartbeatLoop() {
	tick := time.NewTicker(t.cfg.Profile.HeartbeatInterval / 2)
	defer tick.Stop()
	var peers []*peer
	odd := false
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		odd = !odd
		peers = peers[:0]
		t.mu.RLock()
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		t.mu.RUnlock()
		now := t.cfg.Now()
		for _, p := range peers {
			p.tick(now, odd)
		}
	}
}

// watchers fans liveness events out to WatchMembers callbacks. Each watcher
// has its own goroutine and unbounded queue, so a slow watcher delays only
// itself and the transport never blocks on one.
type watchers struct {
	mu   sync.Mutex
	list map[*watcher]struct{}
	wg   sync.WaitGroup // every watcher goroutine, waited for by closeAll
}

type watcher struct {
	fn   func(MemberEvent)
	mu   sync.Mutex
	q    []MemberEvent
	kick chan struct{}
	quit chan struct{}
	once sync.Once
}

func (ws *watchers) add(fn func(MemberEvent)) (stop func()) {
	w := &watcher{fn: fn, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	ws.mu.Lock()
	if ws.list == nil {
		ws.list = make(map[*watcher]struct{})
	}
	ws.list[w] = struct{}{}
	ws.wg.Add(1)
	ws.mu.Unlock()
	go func() {
		defer ws.wg.Done()
		w.run()
	}()
	// stop does not wait for the goroutine, so a callback may call it;
	// the transport's Close waits for every watcher.
	return func() {
		ws.mu.Lock()
		delete(ws.list, w)
		ws.mu.Unlock()
		w.once.Do(func() { close(w.quit) })
	}
}

// emit queues e for every watcher. It never blocks.
func (ws *watchers) emit(e MemberEvent) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.list {
		w.mu.Lock()
		w.q = append(w.q, e)
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// closeAll stops every watcher after it has delivered what is queued.
func (ws *watchers) closeAll() {
	ws.mu.Lock()
	list := ws.list
	ws.list = nil
	ws.mu.Unlock()
	for w := range list {
		w.once.Do(func() { close(w.quit) })
	}
	ws.wg.Wait()
}

func (w *watcher) run() {
	for {
		w.mu.Lock()
		q := w.q
		w.q = nil
		w.mu.Unlock()
		for _, e := range q {
			w.fn(e)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-w.kick:
		case <-w.quit:
			w.mu.Lock()
			q := w.q
			w.q = nil
			w.mu.Unlock()
			for _, e := range q {
				w.fn(e)
			}
			return
		}
	}
}
