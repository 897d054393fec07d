package usrloc

import (
	"sync"
	"time"
)

// HLC is a hybrid logical clock value: the upper 48 bits are milliseconds
// since the Unix epoch, the lower 16 bits a counter that orders events within
// one millisecond and events that arrive from a node whose clock runs ahead.
// Wall clocks are not trusted across nodes: a node that sees a remote HLC
// ahead of its own clock moves its clock up to it, so a write made after
// observing another always carries a larger HLC (causal order), whatever the
// skew.
type HLC uint64

const hlcLogicalBits = 16

// Time is the physical part of h.
func (h HLC) Time() time.Time { return time.UnixMilli(int64(h >> hlcLogicalBits)) }

// hlcClock issues HLC values. Safe for concurrent use.
type hlcClock struct {
	now  func() time.Time
	mu   sync.Mutex
	last HLC
}

// Now returns an HLC larger than every one issued or observed before.
func (c *hlcClock) Now() HLC {
	phys := HLC(c.now().UnixMilli()) << hlcLogicalBits
	c.mu.Lock()
	defer c.mu.Unlock()
	if phys > c.last {
		c.last = phys
	} else {
		c.last++
	}
	return c.last
}

// Observe moves the clock past a remote HLC so later local writes order
// after it.
func (c *hlcClock) Observe(h HLC) {
	c.mu.Lock()
	if h > c.last {
		c.last = h
	}
	c.mu.Unlock()
}
