package dnssrv

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// BlacklistConfig configures a Blacklist; the zero value means defaults.
type BlacklistConfig struct {
	// TTL is how long a failed target stays listed when Add is given no
	// duration. Default 30s.
	TTL time.Duration
	// MaxEntries bounds the list; when full, the entry that expires first
	// is dropped. Default 4096.
	MaxEntries int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Validate reports out-of-range fields.
func (c BlacklistConfig) Validate() error {
	if c.TTL < 0 || c.MaxEntries < 0 {
		return fmt.Errorf("%w: negative blacklist TTL or size", ErrBadConfig)
	}
	return nil
}

// Blacklist remembers targets that failed, for a while, across lookups
// and across resolvers that share it (OpenSIPS' DNS blacklist). Iterators
// try listed targets last, or never with Config.SkipBlacklisted. It is
// safe for concurrent use.
type Blacklist struct {
	cfg BlacklistConfig
	mu  sync.Mutex
	m   map[blKey]time.Time // target -> listed until
}

type blKey struct {
	t  Transport
	ap netip.AddrPort
}

// NewBlacklist makes an empty blacklist.
func NewBlacklist(cfg BlacklistConfig) (*Blacklist, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 4096
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Blacklist{cfg: cfg, m: make(map[blKey]time.Time)}, nil
}

// Add lists t for d, or for the configured TTL when d <= 0. Listing a
// listed target again extends it, never shortens it.
func (b *Blacklist) Add(t Target, d time.Duration) {
	if d <= 0 {
		d = b.cfg.TTL
	}
	now := b.cfg.Now()
	until := now.Add(d)
	k := blKey{t.Transport, t.AddrPort()}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.m[k]; ok && old.After(until) {
		return
	}
	if _, ok := b.m[k]; !ok && len(b.m) >= b.cfg.MaxEntries {
		b.evict(now)
	}
	b.m[k] = until
}

// evict drops expired entries, or the one expiring first if none has.
func (b *Blacklist) evict(now time.Time) {
	var first blKey
	var firstUntil time.Time
	for k, until := range b.m {
		if !now.Before(until) {
			delete(b.m, k)
			continue
		}
		if firstUntil.IsZero() || until.Before(firstUntil) {
			first, firstUntil = k, until
		}
	}
	if len(b.m) >= b.cfg.MaxEntries {
		delete(b.m, first)
	}
}

// Contains reports whether t is listed now.
func (b *Blacklist) Contains(t Target) bool {
	k := blKey{t.Transport, t.AddrPort()}
	b.mu.Lock()
	until, ok := b.m[k]
	if ok && !b.cfg.Now().Before(until) {
		delete(b.m, k)
		ok = false
	}
	b.mu.Unlock()
	return ok
}

// Remove takes t off the list, for example after it answered.
func (b *Blacklist) Remove(t Target) {
	b.mu.Lock()
	delete(b.m, blKey{t.Transport, t.AddrPort()})
	b.mu.Unlock()
}

// Len counts the targets listed now.
func (b *Blacklist) Len() int {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, until := range b.m {
		if now.Before(until) {
			n++
		}
	}
	return n
}
