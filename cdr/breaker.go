package cdr

import (
	"sync"
	"time"
)

// breaker is one endpoint's circuit. Closed: every batch may try it. After
// threshold consecutive failures it opens for a cooldown; when that has
// passed one probe is let through (half-open): success closes it, failure
// reopens it with a doubled cooldown. The mutex is for Stats; only the
// delivery goroutine changes state.
type breaker struct {
	threshold     int
	base, ceiling time.Duration

	mu       sync.Mutex
	fails    int
	open     bool
	until    time.Time
	cooldown time.Duration
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open || !now.Before(b.until)
}

// wait is how long until allow turns true.
func (b *breaker) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return 0
	}
	return max(0, b.until.Sub(now))
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails, b.open, b.cooldown = 0, false, 0
}

func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		b.cooldown = min(2*b.cooldown, b.ceiling)
		b.until = now.Add(b.cooldown)
		return
	}
	b.fails++
	if b.fails >= b.threshold {
		b.open, b.cooldown = true, b.base
		b.until = now.Add(b.cooldown)
	}
}

// BreakerState is the state of an endpoint's circuit.
type BreakerState string

// Circuit states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half-open"
)

func (b *breaker) state(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return BreakerClosed
	case now.Before(b.until):
		return BreakerOpen
	}
	return BreakerHalfOpen
}
