package dnssrv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"
)

// Resolver turns SIP and SIPS URIs into ordered target lists per RFC 3263.
// It is safe for concurrent use. Close it to stop background refreshes.
type Resolver struct {
	cfg       Config
	servers   []string
	supported uint16 // bit t set: the caller supports Transport t
	bl        *Blacklist

	recMu   sync.Mutex
	records *lru[rrKey, *rrSet]
	planMu  sync.Mutex
	plans   *lru[planKey, *plan]
	sf      singleflight.Group

	rngMu sync.Mutex
	rng   *rand.Rand

	ctx     context.Context // canceled by Close; parent of shared queries
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Mutex
	closed  bool

	stats struct {
		queries, tcpFallbacks, recordHits, planHits, planMisses, staleServed, refreshes atomic.Uint64
	}
}

// Stats is a snapshot of a resolver's counters.
type Stats struct {
	Queries      uint64 // DNS queries sent, counting retries
	TCPFallbacks uint64 // truncated UDP answers asked again over TCP
	RecordHits   uint64 // questions answered from the record cache
	PlanHits     uint64 // Resolve calls answered from the target cache
	PlanMisses   uint64 // Resolve calls that had to look records up
	StaleServed  uint64 // expired target lists served while refreshing
	Refreshes    uint64 // background refreshes started
	Blacklisted  int    // targets on the blacklist now
}

// New makes a resolver. With cfg.Servers empty it reads cfg.ResolvConf.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	servers, err := serversFrom(cfg)
	if err != nil {
		return nil, err
	}
	bl := cfg.Blacklist
	if bl == nil {
		if bl, err = NewBlacklist(BlacklistConfig{Now: cfg.Now}); err != nil {
			return nil, err
		}
	}
	r := &Resolver{
		cfg:     cfg,
		servers: servers,
		bl:      bl,
		records: newLRU[rrKey, *rrSet](cfg.CacheSize),
		plans:   newLRU[planKey, *plan](cfg.CacheSize),
		rng:     cfg.Rand,
	}
	for _, t := range cfg.Transports {
		r.supported |= 1 << t
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Close cancels queries in flight and waits for background refreshes to
// end. It is idempotent. After Close, answers still in the cache are
// served; lookups that need the network fail with ErrClosed.
func (r *Resolver) Close() error {
	r.closeMu.Lock()
	r.closed = true
	r.closeMu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// Blacklist is the blacklist this resolver's iterators use.
func (r *Resolver) Blacklist() *Blacklist { return r.bl }

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	return Stats{
		Queries:      r.stats.queries.Load(),
		TCPFallbacks: r.stats.tcpFallbacks.Load(),
		RecordHits:   r.stats.recordHits.Load(),
		PlanHits:     r.stats.planHits.Load(),
		PlanMisses:   r.stats.planMisses.Load(),
		StaleServed:  r.stats.staleServed.Load(),
		Refreshes:    r.stats.refreshes.Load(),
		Blacklisted:  r.bl.Len(),
	}
}

// enter registers work Close must wait for; false once closed.
func (r *Resolver) enter() bool {
	r.closeMu.Lock()
	defer r.closeMu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// goTracked runs f on a goroutine Close waits for, unless already closed.
func (r *Resolver) goTracked(f func()) bool {
	if !r.enter() {
		return false
	}
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// shared runs fetch once for all concurrent callers with the same key.
// The fetch runs under the resolver's context, not the first caller's, so
// one caller giving up does not fail the others; each caller still
// returns as soon as its own ctx is done. singleflight runs fetch on its
// own goroutine; enter/wg make Close wait for it.
func (r *Resolver) shared(ctx context.Context, key string, fetch func(context.Context) (any, error)) (any, error) {
	ch := r.sf.DoChan(key, func() (any, error) {
		if !r.enter() {
			return nil, ErrClosed
		}
		defer r.wg.Done()
		return fetch(r.ctx)
	})
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrServerFailure, ctx.Err())
	}
}
