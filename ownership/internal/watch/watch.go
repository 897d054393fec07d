// Package watch delivers events to watchers: one goroutine per watcher, an
// unbounded queue, events in order, stop waits for the goroutine. Shared by
// ownership.Single and raftowner.
package watch

import "sync"

// Hub fans events out to watchers. Publish never blocks. The zero Hub is
// ready to use.
type Hub[E any] struct {
	mu       sync.Mutex
	watchers map[*watcher[E]]struct{}
	closed   bool
}

type watcher[E any] struct {
	match func(E) bool
	fn    func(E)
	mu    sync.Mutex
	queue []E
	drain bool // deliver what is queued before exiting (Hub.Close)
	wake  chan struct{}
	quit  chan struct{}
	done  chan struct{}
}

// Add registers fn for the events match accepts and queues the matching ones
// of initial first. The caller must hold whatever lock orders its Publish calls,
// so no event falls between initial and the registration.
func (h *Hub[E]) Add(match func(E) bool, fn func(E), initial []E) (stop func()) {
	w := &watcher[E]{match: match, fn: fn, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	for _, e := range initial {
		if match(e) {
			w.queue = append(w.queue, e)
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(w.done)
		return func() {}
	}
	if h.watchers == nil {
		h.watchers = make(map[*watcher[E]]struct{})
	}
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	go w.run()
	w.signal()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.watchers, w)
			h.mu.Unlock()
			close(w.quit)
		})
		<-w.done
	}
}

// Publish queues events for every matching watcher.
func (h *Hub[E]) Publish(events ...E) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		n := 0
		w.mu.Lock()
		for _, e := range events {
			if w.match(e) {
				w.queue = append(w.queue, e)
				n++
			}
		}
		w.mu.Unlock()
		if n > 0 {
			w.signal()
		}
	}
}

// Close delivers the events already queued (the last Lost of a closing
// node must reach its watchers), then stops every watcher and waits for
// their goroutines. Later Adds return a no-op stop.
func (h *Hub[E]) Close() {
	h.mu.Lock()
	h.closed = true
	ws := h.watchers
	h.watchers = nil
	h.mu.Unlock()
	for w := range ws {
		w.mu.Lock()
		w.drain = true
		w.mu.Unlock()
		close(w.quit)
		<-w.done
	}
}

func (w *watcher[E]) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher[E]) run() {
	defer close(w.done)
	for {
		select {
		case <-w.quit:
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			stopping := false
			select {
			case <-w.quit:
				stopping = true
			default:
			}
			if len(w.queue) == 0 || (stopping && !w.drain) {
				w.mu.Unlock()
				if stopping {
					return
				}
				break
			}
			e := w.queue[0]
			var zero E
			w.queue[0] = zero
			w.queue = w.queue[1:]
			w.mu.Unlock()
			w.fn(e)
		}
	}
}
