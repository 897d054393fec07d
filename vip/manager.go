package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/ownership"
)

// HealthSetter is the part of an ownership manager that takes this node's
// health: an unhealthy node gets no resources and the ones it holds move to
// healthy candidates (raftowner.Node implements it; ownership.Single, a
// cluster of one, does not need it).
type HealthSetter interface {
	SetHealthy(ok bool)
}

// Manager holds this node's side of a set of VIPs: it puts an address up
// while the ownership layer says this node holds its resource, renews the
// address's kernel lifetime while that stays true, announces it, and takes
// it down first thing when the ownership is lost. One ownership resource per
// VIP, so VIPs can live on different nodes (active/active).
type Manager struct {
	own     ownership.Manager
	be      Backend
	cfg     Config
	log     *slog.Logger
	runners []*runner
	hooks   hookQueue
	health  *health

	stopWatch func()
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	adds, renewals, removals, announcements, errors atomic.Uint64
	probeConflicts                                  atomic.Uint64
}

// Stats is a snapshot of a Manager's counters.
type Stats struct {
	// Up is the number of VIPs whose address this node has up now.
	Up                                              int
	Adds, Renewals, Removals, Announcements, Errors uint64
	// ProbeConflicts counts probes another host answered (the VIP's add
	// was put off).
	ProbeConflicts       uint64
	Healthy, Maintenance bool
	FailingChecks        []string
}

// New removes stale copies of the VIPs from this host (a previous run may
// have been killed), registers one ownership resource per VIP, and starts
// following them. ctx bounds the start-up work only.
func New(ctx context.Context, own ownership.Manager, be Backend, cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Manager{own: own, be: be, cfg: cfg, log: cfg.Logger, quit: make(chan struct{})}
	hs, canHealth := own.(HealthSetter)
	if len(cfg.Checks) > 0 && !canHealth {
		return nil, fmt.Errorf("%w: %T has no SetHealthy", ErrNoHealth, own)
	}
	for _, v := range cfg.VIPs {
		cctx, cancel := context.WithTimeout(ctx, cfg.BackendTimeout)
		err := be.Remove(cctx, v)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: remove stale %s: %w", ErrBackend, v, err)
		}
	}
	for _, v := range cfg.VIPs {
		spec := ownership.Spec{Name: v.Resource(), Candidates: v.Candidates, Policy: v.Policy, HoldDown: v.HoldDown}
		if err := ensure(ctx, own, spec, cfg.Logger); err != nil {
			return nil, err
		}
	}
	m.hooks.start(cfg.Hook)
	if canHealth {
		m.health = newHealth(hs, cfg, m.quit, &m.wg)
	}
	byRes := map[string]*runner{}
	for _, v := range cfg.VIPs {
		r := &runner{m: m, v: v, res: v.Resource(), kick: make(chan struct{}, 1)}
		m.runners = append(m.runners, r)
		byRes[r.res] = r
		m.goFunc(r.loop)
	}
	m.stopWatch = own.Watch(ownership.KindVIP+"/", func(e ownership.Event) {
		if r := byRes[e.Resource]; r != nil && e.Kind != ownership.Moved {
			r.wake()
		}
	})
	return m, nil
}

// ensure registers a resource, retrying while the cluster is not ready
// (no leader yet, the leader unreachable for a moment) until ctx ends.
func ensure(ctx context.Context, own ownership.Manager, spec ownership.Spec, log *slog.Logger) error {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := own.Ensure(ctx, spec)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ownership.ErrBadSpec), errors.Is(err, ownership.ErrBadName), errors.Is(err, ownership.ErrClosed):
			return fmt.Errorf("vip: ensure %s: %w", spec.Name, err)
		}
		log.Debug("vip: ensure failed, retrying", "resource", spec.Name, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("vip: ensure %s: %w (last error: %w)", spec.Name, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (m *Manager) goFunc(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Close stops following the ownership layer and takes down every address
// this node has up, then waits for its goroutines and the last hooks. It
// does not hand the VIPs over: the ownership layer still counts this node
// as their holder while its lease runs. For a graceful handover call
// SetMaintenance(true) and wait until Stats().Up is 0 (or shut the
// ownership node down with its Shutdown) first. Close is idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.stopWatch()
		close(m.quit)
		m.wg.Wait()
		m.hooks.close()
	})
	return nil
}

// SetMaintenance switches maintenance mode: on, this node reports itself
// unhealthy so the ownership layer hands its VIPs to healthy candidates
// (each one released here before the next holder takes it) and makes it
// no one's standby; off, it becomes eligible again once its checks pass.
// The VIPs stay here while no healthy candidate exists.
func (m *Manager) SetMaintenance(on bool) error {
	if m.health == nil {
		return fmt.Errorf("%w: %T has no SetHealthy", ErrNoHealth, m.own)
	}
	m.health.setMaintenance(on)
	return nil
}

// Healthy reports whether this node reports itself healthy (checks passing,
// not in maintenance). Without a HealthSetter it is always true.
func (m *Manager) Healthy() bool { return m.health == nil || m.health.healthy() }

// Stats returns a snapshot of the counters.
func (m *Manager) Stats() Stats {
	s := Stats{Adds: m.adds.Load(), Renewals: m.renewals.Load(), Removals: m.removals.Load(),
		Announcements: m.announcements.Load(), Errors: m.errors.Load(), ProbeConflicts: m.probeConflicts.Load(),
		Healthy: true}
	for _, r := range m.runners {
		if r.isUp.Load() {
			s.Up++
		}
	}
	if m.health != nil {
		s.Healthy, s.Maintenance, s.FailingChecks = m.health.snapshot()
	}
	return s
}

// hookQueue runs Config.Hook on one goroutine, in order, without letting a
// slow hook hold up the address work.
type hookQueue struct {
	mu     sync.Mutex
	queue  []Change
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func (q *hookQueue) start(fn func(Change)) {
	q.wake = make(chan struct{}, 1)
	q.done = make(chan struct{})
	if fn == nil {
		q.closed = true
		close(q.done)
		return
	}
	go func() {
		defer close(q.done)
		for {
			q.mu.Lock()
			batch, closed := q.queue, q.closed
			q.queue = nil
			q.mu.Unlock()
			for _, c := range batch {
				fn(c)
			}
			if closed && len(batch) == 0 {
				return
			}
			if len(batch) == 0 {
				<-q.wake
			}
		}
	}()
}

func (q *hookQueue) push(c Change) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.queue = append(q.queue, c)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close lets the queued hooks run, then waits for the goroutine.
func (q *hookQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}
