package dnssrv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// plan is the resolved shape of one URI: groups in the fixed order NAPTR
// order/preference and SRV priority give, each group holding the entries
// RFC 2782 orders at random by weight on every Resolve. Plans are
// immutable once built and shared by all readers.
type plan struct {
	groups  []group
	n       int   // total targets
	err     error // negative result, cached like a positive one
	expires time.Time
	trace   []dns.RR // records followed; only filled for Explain
}

type group struct {
	entries []entry // weight-0 entries first, as RFC 2782 orders them
	total   uint64  // sum of weights
}

type entry struct {
	weight  uint16
	targets []Target // one per address, in family preference order
}

// builder walks RFC 3263 §4 for one key.
type builder struct {
	r           *Resolver
	ctx         context.Context
	p           *plan
	expires     time.Time
	unavailable bool  // an SRV set was just "."
	hostNX      bool  // the URI host itself does not exist
	soft        error // a failed lookup that did not stop the walk
	tracing     bool
}

func (r *Resolver) build(ctx context.Context, k planKey, tracing bool) (*plan, error) {
	now := r.cfg.Now()
	b := &builder{r: r, ctx: ctx, p: &plan{}, expires: now.Add(r.cfg.MaxTTL), tracing: tracing}
	switch {
	case k.port != 0:
		// §4.2: an explicit port means A/AAAA only, on the URI's transport
		// or the default one.
		t, err := b.transportOr(k)
		if err != nil {
			return nil, err
		}
		b.hostGroup(k.host, t, k.port)
	case k.tr != 0:
		// §4.2: an explicit transport skips NAPTR; SRV for it, then A/AAAA.
		b.srv(k.tr.SRVPrefix()+k.host, k.tr)
		if b.p.n == 0 && !b.unavailable {
			b.hostGroup(k.host, k.tr, k.tr.DefaultPort())
		}
	default:
		if !r.cfg.IgnoreNAPTR {
			b.naptr(k.host, k.secure, 0, nil)
		}
		// No usable NAPTR: SRV for each transport the caller supports, in
		// its order of preference (§4.1), then plain A/AAAA (§4.2).
		if b.p.n == 0 && !b.unavailable {
			for _, t := range r.cfg.Transports {
				if !k.secure || t.Secure() {
					b.srv(t.SRVPrefix()+k.host, t)
				}
			}
		}
		if b.p.n == 0 && !b.unavailable {
			t, err := r.defaultTransport(k.secure)
			if err != nil {
				return nil, err
			}
			b.hostGroup(k.host, t, t.DefaultPort())
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrServerFailure, ctx.Err())
	}
	p := b.p
	switch {
	case p.n > 0 && b.soft != nil:
		// Usable but incomplete: keep it only briefly.
		p.expires = minTime(b.expires, now.Add(r.cfg.NegativeTTL))
	case p.n > 0:
		p.expires = b.expires
	case b.unavailable:
		p.err, p.expires = &LookupError{Name: k.host, Err: ErrServiceUnavailable}, b.expires
	case b.soft != nil:
		return p, b.soft // a failure, not an answer: not cached
	case b.hostNX:
		p.err, p.expires = &LookupError{Name: k.host, Err: ErrNotFound}, b.expires
	default:
		p.err, p.expires = &LookupError{Name: k.host, Err: ErrNoTargets}, b.expires
	}
	return p, nil
}

func (b *builder) transportOr(k planKey) (Transport, error) {
	if k.tr != 0 {
		return k.tr, nil
	}
	return b.r.defaultTransport(k.secure)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// get looks one question up and folds its TTL and records into the plan.
func (b *builder) get(name string, qtype uint16) []dns.RR {
	s, err := b.r.lookup(b.ctx, name, qtype)
	if err != nil {
		if b.soft == nil || errors.Is(b.soft, ErrNoTargets) {
			b.soft = err
		}
		return nil
	}
	b.expires = minTime(b.expires, s.expires)
	if b.tracing {
		for _, rr := range slices.Concat(s.chain, s.rrs) {
			// The same cached records serve several SRV targets; list them once.
			if !slices.Contains(b.p.trace, rr) {
				b.p.trace = append(b.p.trace, rr)
			}
		}
	}
	return s.rrs
}

func (b *builder) full() bool { return b.p.n >= b.r.cfg.MaxTargets }

// addrs returns the host's addresses in the configured family order.
func (b *builder) addrs(host string) []netip.Addr {
	var order []uint16
	switch b.r.cfg.Family {
	case PreferIPv4:
		order = []uint16{dns.TypeA, dns.TypeAAAA}
	case PreferIPv6:
		order = []uint16{dns.TypeAAAA, dns.TypeA}
	case IPv4Only:
		order = []uint16{dns.TypeA}
	case IPv6Only:
		order = []uint16{dns.TypeAAAA}
	}
	var out []netip.Addr
	for _, qt := range order {
		for _, rr := range b.get(host, qt) {
			var a netip.Addr
			switch v := rr.(type) {
			case *dns.A:
				a, _ = netip.AddrFromSlice(v.A.To4())
			case *dns.AAAA:
				a, _ = netip.AddrFromSlice(v.AAAA.To16())
			}
			if a.IsValid() && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// entryFor makes the entry of one host; it is empty if the host has no
// address (that target is then skipped, as if absent).
func (b *builder) entryFor(host string, t Transport, port uint16, weight uint16) entry {
	e := entry{weight: weight}
	display := strings.TrimSuffix(host, ".")
	for _, a := range b.addrs(host) {
		if b.p.n+len(e.targets) >= b.r.cfg.MaxTargets {
			break
		}
		e.targets = append(e.targets, Target{Transport: t, Host: display, Port: port, Addr: a})
	}
	return e
}

func (b *builder) addGroup(g group) {
	var kept []entry
	for _, e := range g.entries {
		if len(e.targets) > 0 {
			kept = append(kept, e)
			b.p.n += len(e.targets)
		}
	}
	if len(kept) == 0 {
		return
	}
	g.entries, g.total = kept, 0
	for _, e := range kept {
		g.total += uint64(e.weight)
	}
	b.p.groups = append(b.p.groups, g)
}

func (b *builder) hostGroup(host string, t Transport, port uint16) {
	e := b.entryFor(dns.Fqdn(host), t, port, 0)
	if len(e.targets) == 0 {
		b.hostNX = b.nx(dns.Fqdn(host))
	}
	b.addGroup(group{entries: []entry{e}})
}

// nx reports whether name is cached as not existing at all.
func (b *builder) nx(name string) bool {
	b.r.recMu.Lock()
	defer b.r.recMu.Unlock()
	s, ok := b.r.records.get(rrKey{dns.CanonicalName(name), dns.TypeA})
	if !ok {
		s, ok = b.r.records.get(rrKey{dns.CanonicalName(name), dns.TypeAAAA})
	}
	return ok && s.nx
}

// srv adds the targets of one SRV name, by priority, each priority level
// one weighted group (RFC 2782).
func (b *builder) srv(name string, t Transport) {
	if b.full() {
		return
	}
	var recs []*dns.SRV
	for _, rr := range b.get(dns.Fqdn(name), dns.TypeSRV) {
		if s, ok := rr.(*dns.SRV); ok {
			recs = append(recs, s)
		}
	}
	if len(recs) == 1 && recs[0].Target == "." {
		b.unavailable = true
		return
	}
	// Priority ascending; inside a priority, weight 0 first (RFC 2782),
	// otherwise the answer's order, so plans are reproducible.
	slices.SortStableFunc(recs, func(x, y *dns.SRV) int {
		if c := cmp.Compare(x.Priority, y.Priority); c != 0 {
			return c
		}
		return cmp.Compare(min(x.Weight, 1), min(y.Weight, 1))
	})
	for i := 0; i < len(recs) && !b.full(); {
		j := i
		var g group
		for ; j < len(recs) && recs[j].Priority == recs[i].Priority; j++ {
			if recs[j].Target == "." || recs[j].Port == 0 {
				continue // "." among others, or port 0: nothing to send to
			}
			g.entries = append(g.entries, b.entryFor(recs[j].Target, t, recs[j].Port, recs[j].Weight))
		}
		b.addGroup(g)
		i = j
	}
}

// naptr follows the NAPTR records of name (RFC 3263 §4.1, RFC 3403):
// terminal "S" records lead to SRV, non-terminal ones (empty flags) to
// more NAPTR records, up to MaxDepth and never twice to the same name.
func (b *builder) naptr(name string, secure bool, depth int, seen []string) {
	fq := dns.CanonicalName(name)
	if depth > b.r.cfg.MaxDepth || slices.Contains(seen, fq) {
		b.soft = &LookupError{Name: fq, Err: ErrTooDeep}
		return
	}
	seen = append(seen, fq)
	var recs []*dns.NAPTR
	for _, rr := range b.get(fq, dns.TypeNAPTR) {
		n, ok := rr.(*dns.NAPTR)
		// SIP uses the replacement, never the regexp (RFC 3263 §4.1).
		if ok && n.Replacement != "." && n.Replacement != "" && n.Regexp == "" {
			recs = append(recs, n)
		}
	}
	slices.SortStableFunc(recs, func(x, y *dns.NAPTR) int {
		if c := cmp.Compare(x.Order, y.Order); c != 0 {
			return c
		}
		return cmp.Compare(x.Preference, y.Preference)
	})
	for _, n := range recs {
		if b.full() {
			return
		}
		// An SRV "." rules out one transport, not the others listed.
		switch {
		case strings.EqualFold(n.Flags, "s"):
			t, ok := transportForService(n.Service)
			if !ok || !b.r.supports(t) || (secure && !t.Secure()) {
				continue
			}
			b.srv(n.Replacement, t)
		case n.Flags == "":
			b.naptr(n.Replacement, secure, depth+1, seen)
		}
	}
}
