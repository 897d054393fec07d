package partition

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// MemberSource gives the committed membership with roles and weights, as
// the ownership layer has applied it on this node.
//
// Concurrency: Members is called from the ownership layer's goroutines and
// from [Partitioner.Placement]; it must be safe for concurrent use and must
// not block on the network.
type MemberSource interface {
	Members() []Member
}

// Committed is the [MemberSource] of an ownership layer that publishes its
// committed membership (raftowner does): nodes are Active, spares Spare,
// arbiters own nothing and are left out, the configured weights carry over,
// and a member the layer committed as unhealthy is Down.
func Committed(ml ownership.MemberLister) MemberSource {
	return MemberSourceFunc(func() []Member {
		var ms []Member
		for _, m := range ml.Members() {
			pm := Member{ID: m.ID, Weight: m.Weight, Down: !m.Healthy}
			switch m.Role {
			case ownership.RoleNode:
			case ownership.RoleSpare:
				pm.Role = Spare
			default:
				continue
			}
			ms = append(ms, pm)
		}
		return ms
	})
}

// MemberSourceFunc adapts a function to [MemberSource].
type MemberSourceFunc func() []Member

// Members calls f.
func (f MemberSourceFunc) Members() []Member { return f() }

// Failback says whether a key returns to its placed owner when that node
// comes back after a failure.
type Failback uint8

const (
	// FailbackPreferred moves a key back to its placed owner once that node
	// has been alive and healthy for HoldDown (the ownership layer's Placed
	// policy, which behaves like Preferred). The ownership layer recomputes
	// the key's candidates when the committed membership changes.
	FailbackPreferred Failback = iota
	// FailbackSticky leaves a key where it is while its owner is alive and
	// healthy (ownership.Sticky, keepalived's nopreempt): the spare keeps a
	// failed node's keys and the returning node stands by, so a tenant
	// moves once per failure instead of twice. Its candidates are the
	// key's ranking over the committed membership: computed at Add, and
	// recomputed when the membership changes (nodes joining or leaving,
	// roles, weights; not health) when the manager is an
	// ownership.MemberLister, without moving any key whose owner is alive
	// and still a member. See Config.ReplaceDelay.
	FailbackSticky
)

func (f Failback) String() string {
	switch f {
	case FailbackPreferred:
		return "preferred"
	case FailbackSticky:
		return "sticky"
	}
	return fmt.Sprintf("failback(%d)", uint8(f))
}

// Config configures a [Partitioner]. The zero value places tenants
// ("tenant/<key>") by plain rendezvous hashing and moves them back to a
// returning owner after the hold-down.
type Config struct {
	// Kind is the resource kind keys are registered under; default
	// ownership.KindTenant, so key "acme.example" is "tenant/acme.example".
	Kind string
	// Options tune placement (bounded loads).
	Options Options
	// Failback: back to a returning owner (default) or sticky.
	Failback Failback
	// HoldDown is how long a returning member must stay alive before its
	// keys move back to it (FailbackPreferred); zero means the ownership
	// layer's default.
	HoldDown time.Duration
	// ReplaceDelay is how long the committed membership must stay the
	// same before FailbackSticky keys are re-placed over it, so that
	// changes in quick succession (a join, then the weight the new node
	// registers) make one pass. Zero means 1 s.
	ReplaceDelay time.Duration
	// ManualReplace turns the re-placement of FailbackSticky keys off:
	// their candidates stay the ranking computed at Add until Add is
	// called again.
	ManualReplace bool
	// Logger; default discards.
	Logger *slog.Logger
}

// Validate checks the config.
func (c Config) Validate() error {
	if err := c.Options.Validate(); err != nil {
		return err
	}
	if c.HoldDown < 0 || c.ReplaceDelay < 0 {
		return fmt.Errorf("%w: negative HoldDown or ReplaceDelay", ErrBadConfig)
	}
	if c.Failback > FailbackSticky {
		return fmt.Errorf("%w: unknown %v", ErrBadConfig, c.Failback)
	}
	if c.Kind != "" {
		if err := ownership.ValidName(c.Kind + "/x"); err != nil {
			return fmt.Errorf("%w: Kind %q: %w", ErrBadConfig, c.Kind, err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Kind == "" {
		c.Kind = ownership.KindTenant
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ReplaceDelay == 0 {
		c.ReplaceDelay = time.Second
	}
	return c
}

// Partitioner registers keys (tenants, domains) as resources of the
// ownership layer with the Placed policy and this package's placement, so
// the leader commits each key's owner and standbys from the committed
// membership, and tells this node which keys it gained and lost.
type Partitioner struct {
	m      ownership.Manager
	src    MemberSource
	cfg    Config
	prefix string

	mu      sync.Mutex
	keys    map[string]ownership.Claim // committed keys and owners
	keysVer uint64                     // bumped when keys gains or loses one
	held    map[string]bool            // keys this node holds now
	epoch   ownership.Epoch            // largest epoch seen
	cache   placementCache
	subs    map[*subscriber]struct{}
	closed  bool

	stopWatch func()
	replacer  *replacer // FailbackSticky over a MemberLister; else nil
	closeOnce sync.Once
}

// New watches m for the configured kind's resources. src supplies the roles
// and weights of the committed membership; nil means [Committed] of m, which
// needs m to be an [ownership.MemberLister]. With FailbackSticky and a
// manager that is a MemberLister it also watches the membership and
// re-places the committed keys when it changes; every node that may own
// keys must then run a Partitioner of this kind with the same Config.
func New(m ownership.Manager, src MemberSource, cfg Config) (*Partitioner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: nil manager", ErrBadConfig)
	}
	if src == nil {
		ml, ok := m.(ownership.MemberLister)
		if !ok {
			return nil, fmt.Errorf("%w: no member source, and the manager does not list members", ErrBadConfig)
		}
		src = Committed(ml)
	}
	cfg = cfg.withDefaults()
	p := &Partitioner{m: m, src: src, cfg: cfg, prefix: cfg.Kind + "/",
		keys: map[string]ownership.Claim{}, held: map[string]bool{}, subs: map[*subscriber]struct{}{}}
	p.stopWatch = m.Watch(p.prefix, p.onEvent)
	if ml, ok := m.(ownership.MemberLister); ok && cfg.Failback == FailbackSticky && !cfg.ManualReplace {
		p.replacer = startReplacer(p, ml)
	}
	return p, nil
}

// Resource names key's ownership resource ("tenant/acme.example").
func (p *Partitioner) Resource(key string) string { return p.prefix + key }

func (p *Partitioner) checkKey(key string) (string, error) {
	res := p.Resource(key)
	if err := ownership.ValidName(res); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return res, nil
}

// Add registers key and returns once the ownership layer has committed it.
// With FailbackSticky it also re-places a key already registered, over
// the membership of now.
func (p *Partitioner) Add(ctx context.Context, key string) error {
	res, err := p.checkKey(key)
	if err != nil {
		return err
	}
	if p.cfg.Failback == FailbackSticky {
		var ids []cluster.NodeID
		for _, m := range p.src.Members() {
			ids = append(ids, m.ID)
		}
		cands := p.place(res, ids)
		if len(cands) == 0 {
			return fmt.Errorf("%w: no member to place %q on", ErrBadMembers, key)
		}
		return p.m.Ensure(ctx, ownership.Spec{Name: res, Policy: ownership.Sticky, Candidates: cands})
	}
	return p.m.Ensure(ctx, ownership.Spec{Name: res, Policy: ownership.Placed, HoldDown: p.cfg.HoldDown, Place: p.place})
}

// ReplaceStats reports the re-placement of FailbackSticky keys on this
// node; zero when it does not run.
func (p *Partitioner) ReplaceStats() ReplaceStats {
	if p.replacer == nil {
		return ReplaceStats{}
	}
	return p.replacer.stats()
}

// Remove unregisters key; its holder gets Lost.
func (p *Partitioner) Remove(ctx context.Context, key string) error {
	res, err := p.checkKey(key)
	if err != nil {
		return err
	}
	return p.m.Remove(ctx, res)
}

// Owner reports key's committed owner as this node last learned it: for
// routing, never for deciding to act (see [Partitioner.Held]).
func (p *Partitioner) Owner(key string) (ownership.Claim, bool) {
	return p.m.Owner(p.Resource(key))
}

// Held reports whether this node holds key now and at which epoch; serve
// the key only when it does, and tag what you do with the epoch.
func (p *Partitioner) Held(key string) (ownership.Epoch, bool) {
	return p.m.Held(p.Resource(key))
}

// LocalID is this node's ID.
func (p *Partitioner) LocalID() cluster.NodeID { return p.m.LocalID() }

// Keys returns the committed keys, sorted.
func (p *Partitioner) Keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ks := make([]string, 0, len(p.keys))
	for k := range p.keys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// onEvent folds one ownership event into the committed view. It runs on
// the ownership watcher's goroutine, one event at a time.
func (p *Partitioner) onEvent(e ownership.Event) {
	key := strings.TrimPrefix(e.Resource, p.prefix)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch = max(p.epoch, e.Claim.Epoch)
	switch e.Kind {
	case ownership.Moved:
		_, had := p.keys[key]
		if e.Removed {
			delete(p.keys, key)
		} else {
			p.keys[key] = e.Claim
		}
		if had == e.Removed {
			p.keysVer++
		}
	case ownership.Acquired:
		p.held[key] = true
	case ownership.Lost:
		delete(p.held, key)
	}
	if e.Kind != ownership.Moved {
		for s := range p.subs {
			s.signal()
		}
	}
}

// Close stops watching the ownership layer and stops every watcher,
// waiting for them. It is idempotent. Close the Partitioner before the
// Manager: ownership's watch stop panics once the Manager is closed.
func (p *Partitioner) Close() error {
	p.closeOnce.Do(func() {
		if p.replacer != nil {
			p.replacer.stop()
		}
		p.stopWatch()
		p.mu.Lock()
		p.closed = true
		subs := make([]*subscriber, 0, len(p.subs))
		for s := range p.subs {
			subs = append(subs, s)
		}
		p.mu.Unlock()
		for _, s := range subs {
			s.stop()
		}
	})
	return nil
}
