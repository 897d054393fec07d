package partition

import (
	"slices"
	"sync"

	"github.com/sipha/sipha/ownership"
)

// Change is what one node gained and lost since the previous Change it
// delivered to a watcher.
type Change struct {
	// Epoch is the largest ownership epoch this node had seen when the
	// change was taken; it only grows.
	Epoch ownership.Epoch
	// Gained are the keys this node now holds (start serving them), and
	// Lost the keys it no longer holds (stop at once); both sorted.
	Gained, Lost []string
}

// Watch calls fn with the keys this node gains and loses: first a Change
// whose Gained lists every key held now, then one per batch of ownership
// events. Events that arrive while fn runs are folded into the next
// Change by net effect, so a key gained and lost in between is not
// reported at all.
//
// Concurrency: fn runs on a goroutine of its own, never concurrently with
// itself. It should return quickly: a late Lost is a late stop. stop
// removes the watcher and waits for a running fn; do not call it from fn.
func (p *Partitioner) Watch(fn func(Change)) (stop func()) {
	s := &subscriber{p: p, fn: fn, reported: map[string]bool{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return func() {}
	}
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	go s.run()
	s.signal()
	return s.stop
}

// subscriber is one Watch: it compares the held set with what it last
// reported and delivers the difference.
type subscriber struct {
	p        *Partitioner
	fn       func(Change)
	reported map[string]bool // keys reported held; touched only by run
	wake     chan struct{}
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) stop() {
	s.once.Do(func() {
		s.p.mu.Lock()
		delete(s.p.subs, s)
		s.p.mu.Unlock()
		close(s.quit)
	})
	<-s.done
}

func (s *subscriber) run() {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			return
		case <-s.wake:
		}
		if c, ok := s.diff(); ok {
			s.fn(c)
		}
	}
}

func (s *subscriber) diff() (Change, bool) {
	p := s.p
	p.mu.Lock()
	c := Change{Epoch: p.epoch}
	for k := range p.held {
		if !s.reported[k] {
			c.Gained = append(c.Gained, k)
		}
	}
	for k := range s.reported {
		if !p.held[k] {
			c.Lost = append(c.Lost, k)
		}
	}
	p.mu.Unlock()
	for _, k := range c.Gained {
		s.reported[k] = true
	}
	for _, k := range c.Lost {
		delete(s.reported, k)
	}
	slices.Sort(c.Gained)
	slices.Sort(c.Lost)
	return c, len(c.Gained)+len(c.Lost) > 0
}
