package usrloc

import "sync"

// Watch calls fn for every change of the bindings of aor, or of every AOR
// when aor is "". Changes made here and those replicated from other nodes
// are both delivered (Event.Remote tells them apart).
//
// Concurrency: fn runs on one goroutine per watcher, never concurrently with
// itself, in the order the changes were made to each AOR. Events queue
// without bound while fn runs, so fn should not block for long. stop
// removes the watcher and waits for a running fn; do not call it from fn.
func (s *Store) Watch(aor string, fn func(Event)) (stop func()) {
	w := &watcher{aor: aor, all: aor == "", fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	s.wmu.Lock()
	ws := append(append([]*watcher(nil), *s.watchers.Load()...), w)
	s.watchers.Store(&ws)
	s.wmu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.wmu.Lock()
			old := *s.watchers.Load()
			ws := make([]*watcher, 0, len(old))
			for _, x := range old {
				if x != w {
					ws = append(ws, x)
				}
			}
			s.watchers.Store(&ws)
			s.wmu.Unlock()
			w.stop()
		})
	}
}

func (s *Store) hasWatchers() bool { return len(*s.watchers.Load()) > 0 }

// emit queues events for the watchers that want them.
func (s *Store) emit(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for _, w := range *s.watchers.Load() {
		w.mu.Lock()
		for _, ev := range evs {
			if w.all || ev.Binding.AOR == w.aor {
				w.q = append(w.q, ev)
			}
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

type watcher struct {
	aor  string
	all  bool
	fn   func(Event)
	mu   sync.Mutex
	q    []Event
	wake chan struct{}
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func (w *watcher) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			q := w.q
			w.q = nil
			w.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, ev := range q {
				select {
				case <-w.done:
					return
				default:
				}
				w.fn(ev)
			}
		}
	}
}

func (w *watcher) stop() {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
}
