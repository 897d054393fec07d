package dnssrv

import (
	"context"
	"math/rand/v2"

	"github.com/emiago/sipgo/sip"
	"github.com/miekg/dns"
)

// Resolve returns the targets for u in the order RFC 3263 §4 says to try
// them: NAPTR order and preference, then SRV priority, then RFC 2782
// weighted random order inside a priority, then addresses in the
// configured family order. The slice is new and belongs to the caller.
//
// Answers are cached by TTL, so a repeated Resolve costs a map lookup,
// the weighted draw and one allocation for the result; AppendResolve
// avoids even that.
func (r *Resolver) Resolve(ctx context.Context, u *sip.Uri) ([]Target, error) {
	return r.resolve(ctx, nil, u, picker{r: r})
}

// AppendResolve is Resolve appending to dst, for callers that reuse a slice.
func (r *Resolver) AppendResolve(ctx context.Context, dst []Target, u *sip.Uri) ([]Target, error) {
	if dst == nil {
		dst = []Target{} // non-nil: resolve allocates only for nil dst
	}
	return r.resolve(ctx, dst, u, picker{r: r})
}

// ResolveKey is Resolve with the weighted order drawn from key instead of
// the shared generator: the same key gives the same order for as long as
// the DNS data stays the same. A stateless proxy passes RequestKey(req)
// so that a retransmission goes where the original went (RFC 3263 §4.4).
func (r *Resolver) ResolveKey(ctx context.Context, u *sip.Uri, key uint64) ([]Target, error) {
	pcg := rand.NewPCG(key, 0x9e3779b97f4a7c15)
	return r.resolve(ctx, nil, u, picker{r: r, pcg: pcg})
}

// ResolveString parses s as a SIP or SIPS URI and resolves it.
func (r *Resolver) ResolveString(ctx context.Context, s string) ([]Target, error) {
	u, err := ParseURI(s)
	if err != nil {
		return nil, err
	}
	return r.Resolve(ctx, u)
}

func (r *Resolver) resolve(ctx context.Context, dst []Target, u *sip.Uri, pk picker) ([]Target, error) {
	k, lit, err := r.keyFor(u)
	if err != nil {
		return dst, err
	}
	if lit.IsValid() {
		t, err := r.literal(k, lit, u.Host)
		if err != nil {
			return dst, err
		}
		return append(dst, t), nil
	}
	p, err := r.planFor(ctx, k)
	if err != nil {
		return dst, err
	}
	if p.err != nil {
		return dst, p.err
	}
	if dst == nil {
		dst = make([]Target, 0, p.n)
	}
	return p.appendTo(dst, pk), nil
}

// planFor returns the cached plan for k or builds one. With
// StaleWhileRevalidate an expired plan is served while one background
// rebuild runs.
func (r *Resolver) planFor(ctx context.Context, k planKey) (*plan, error) {
	now := r.cfg.Now()
	r.planMu.Lock()
	p, ok := r.plans.get(k)
	r.planMu.Unlock()
	if ok {
		if now.Before(p.expires) {
			r.stats.planHits.Add(1)
			return p, nil
		}
		if now.Before(p.expires.Add(r.cfg.StaleWhileRevalidate)) {
			r.stats.staleServed.Add(1)
			r.refresh(k)
			return p, nil
		}
	}
	r.stats.planMisses.Add(1)
	return r.buildShared(ctx, k)
}

func (r *Resolver) buildShared(ctx context.Context, k planKey) (*plan, error) {
	v, err := r.shared(ctx, "plan/"+k.String(), func(fctx context.Context) (any, error) {
		p, err := r.build(fctx, k, false)
		if err != nil {
			return nil, err
		}
		r.planMu.Lock()
		r.plans.put(k, p)
		r.planMu.Unlock()
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*plan), nil
}

// refresh rebuilds k's plan in the background; concurrent refreshes and
// lookups of k share one build.
func (r *Resolver) refresh(k planKey) {
	r.goTracked(func() {
		r.stats.refreshes.Add(1)
		if _, err := r.buildShared(r.ctx, k); err != nil {
			r.cfg.Logger.Debug("dnssrv: background refresh failed", "host", k.host, "err", err)
		}
	})
}

// Explanation is what Explain found: the targets, and the DNS records
// followed to find them, in the order they were used.
type Explanation struct {
	Targets []Target
	Records []dns.RR
}

// Explain resolves u like Resolve and also reports the records it
// followed. It bypasses the target cache (the record cache still serves).
func (r *Resolver) Explain(ctx context.Context, u *sip.Uri) (*Explanation, error) {
	k, lit, err := r.keyFor(u)
	if err != nil {
		return nil, err
	}
	if lit.IsValid() {
		t, err := r.literal(k, lit, u.Host)
		if err != nil {
			return nil, err
		}
		return &Explanation{Targets: []Target{t}}, nil
	}
	p, err := r.build(ctx, k, true)
	if err != nil {
		return nil, err
	}
	ex := &Explanation{Records: p.trace}
	if p.err != nil {
		return ex, p.err
	}
	ex.Targets = p.appendTo(make([]Target, 0, p.n), picker{r: r})
	return ex, nil
}
