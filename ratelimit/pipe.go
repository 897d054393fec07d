package ratelimit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// maxEmission caps the spacing between calls of a token bucket whose share
// is (nearly) zero, so arithmetic on it cannot overflow.
const maxEmission = int64(time.Hour)

// sentRing is how many rounds of its own sent demand a pipe remembers.
const sentRing = 8

// pipe is one named limit on this node. The fields read on the Allow path
// are atomics (token bucket) or behind the pipe's own mutex (windows); the
// fields below "loop-owned" are touched only by the limiter's goroutine.
type pipe struct {
	name  string
	limit Limit
	// deny is set when the pipe's limit could not be read: it admits
	// nothing.
	deny      bool
	unlimited bool

	// TokenBucket in GCRA form: tat is the theoretical arrival time (ns
	// since the limiter's epoch) of the next call at the current rate; a
	// call is admitted while tat stays within burst of now.
	tat       atomic.Int64
	emission  atomic.Int64 // ns between calls at this node's share
	tolerance atomic.Int64 // burst × emission

	// SlidingWindow and FixedWindow.
	mu       sync.Mutex
	winIndex int64         // index of the current fixed window
	cur      float64       // calls admitted in the current window
	prev     float64       // calls admitted in the previous window
	winLimit atomic.Uint64 // float64 bits: calls per window at this node's share

	asked    atomic.Uint64 // calls asked for (admitted or not): the demand
	admitted atomic.Uint64

	// loop-owned
	lastAsked  uint64
	lastActive int64             // ns since epoch of the last tick that saw demand
	demand     float64           // smoothed calls/s asked for on this node
	share      float64           // calls/s this node may admit
	safe       float64           // the share last agreed with every peer
	sent       [sentRing]float64 // demand sent in recent rounds, by round % sentRing
	shareBits  atomic.Uint64     // float64 bits of share, for Stats
	demandBits atomic.Uint64     // float64 bits of demand, for Stats
}

func newPipe(name string, l Limit, now int64) *pipe {
	p := &pipe{name: name, limit: l, unlimited: l.unlimited(), lastActive: now}
	p.tat.Store(now)
	return p
}

// setShare makes the node admit rate calls/s with the given burst from now on.
// Called by the loop goroutine (and once at creation); concurrent Allow
// calls see either the old or the new rate.
func (p *pipe) setShare(rate float64, burst float64, now int64) {
	p.share = rate
	p.shareBits.Store(math.Float64bits(rate))
	burst = max(1, burst)
	switch {
	case p.bucket():
		em := maxEmission
		if rate > 0 {
			em = min(maxEmission, max(1, int64(float64(time.Second)/rate)))
		}
		p.emission.Store(em)
		tol := int64(burst * float64(em))
		old := p.tolerance.Swap(tol)
		if old == 0 || old == tol {
			return
		}
		// Keep the fraction of the burst in use: a pipe that was saturated
		// stays saturated when its share changes (no burst from a share
		// that grew), and a backlog taken at a tiny share does not block
		// the pipe once the share grows.
		for {
			tat := p.tat.Load()
			backlog := tat - now
			if backlog <= 0 {
				return
			}
			scaled := int64(float64(backlog) * float64(tol) / float64(old))
			if p.tat.CompareAndSwap(tat, now+scaled) {
				return
			}
		}
	default:
		w := rate * p.limit.Window.Seconds()
		p.winLimit.Store(math.Float64bits(max(w, min(1, burst))))
	}
}

// allow decides n calls at now (ns since epoch).
func (p *pipe) allow(now int64, n int) bool {
	if n <= 0 {
		return n == 0 && !p.deny
	}
	p.asked.Add(uint64(n))
	var ok bool
	switch {
	case p.unlimited:
		ok = true
	case p.deny:
		ok = false
	case p.bucket():
		ok = p.allowBucket(now, int64(n), p.limit.Algorithm == RED)
	default:
		ok = p.allowWindow(now, float64(n))
	}
	if ok {
		p.admitted.Add(uint64(n))
	}
	return ok
}

// bucket reports whether the pipe runs on the token bucket.
func (p *pipe) bucket() bool { return p.limit.Algorithm == TokenBucket || p.limit.Algorithm == RED }

// redFrom is the fraction of the burst in use above which RED drops early.
const redFrom = 0.5

func (p *pipe) allowBucket(now, n int64, early bool) bool {
	em, tol := p.emission.Load(), p.tolerance.Load()
	for {
		tat := p.tat.Load()
		newTat := max(tat, now) + n*em
		if newTat-now > tol {
			return false
		}
		if early && tol > 0 {
			if fill := float64(tat-now) / float64(tol); fill > redFrom && p.coin() < (fill-redFrom)/(1-redFrom) {
				return false
			}
		}
		if p.tat.CompareAndSwap(tat, newTat) {
			return true
		}
	}
}

// reserve takes n calls from the bucket now and says how long the caller
// must wait before making them, or refuses when that is beyond maxWait.
func (p *pipe) reserve(now int64, n int64, maxWait time.Duration) (time.Duration, bool) {
	if n <= 0 {
		return 0, n == 0 && !p.deny
	}
	p.asked.Add(uint64(n))
	if p.unlimited {
		p.admitted.Add(uint64(n))
		return 0, true
	}
	em, tol := p.emission.Load(), p.tolerance.Load()
	for {
		tat := p.tat.Load()
		newTat := max(tat, now) + n*em
		wait := time.Duration(max(0, newTat-now-tol))
		if wait > maxWait || p.deny {
			return wait, false
		}
		if p.tat.CompareAndSwap(tat, newTat) {
			p.admitted.Add(uint64(n))
			return wait, true
		}
	}
}

// coin is a uniform number in [0,1) for RED: the pipe's call counter
// through a SplitMix64 step, so no lock and no shared generator.
func (p *pipe) coin() float64 {
	z := p.asked.Load()*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

func (p *pipe) allowWindow(now int64, n float64) bool {
	w := int64(p.limit.Window)
	limit := math.Float64frombits(p.winLimit.Load())
	idx := now / w
	p.mu.Lock()
	defer p.mu.Unlock()
	if idx != p.winIndex {
		if idx == p.winIndex+1 {
			p.prev = p.cur
		} else {
			p.prev = 0
		}
		p.cur = 0
		p.winIndex = idx
	}
	used := p.cur
	if p.limit.Algorithm == SlidingWindow {
		elapsed := float64(now-idx*w) / float64(w)
		used += p.prev * (1 - elapsed)
	}
	if used+n > limit {
		return false
	}
	p.cur += n
	return true
}
