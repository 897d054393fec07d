package dnssrv

import (
	"context"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// rrKey names one cached question.
type rrKey struct {
	name  string // canonical: lower case, fully qualified
	qtype uint16
}

// rrSet is the processed answer to one question: the records of the asked
// type at the end of any CNAME chain, or a negative answer.
type rrSet struct {
	rrs     []dns.RR // only records of the asked type, owned by the final name
	chain   []dns.RR // CNAMEs followed to get there, for Explain
	nx      bool     // NXDOMAIN (as opposed to NODATA) when rrs is empty
	expires time.Time
}

// lookup answers one question from the record cache or the network.
// Concurrent lookups of one question share one network query.
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (*rrSet, error) {
	k := rrKey{dns.CanonicalName(name), qtype}
	now := r.cfg.Now()
	r.recMu.Lock()
	s, ok := r.records.get(k)
	r.recMu.Unlock()
	if ok && now.Before(s.expires) {
		r.stats.recordHits.Add(1)
		return s, nil
	}
	v, err := r.shared(ctx, "rr/"+dns.TypeToString[qtype]+"/"+k.name, func(fctx context.Context) (any, error) {
		s, err := r.fetch(fctx, k.name, qtype)
		if err != nil {
			return nil, err
		}
		r.recMu.Lock()
		r.records.put(k, s)
		r.recMu.Unlock()
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*rrSet), nil
}

// fetch queries the network for name/qtype, following CNAMEs both inside
// one answer and, when a server returns only the chain, by asking again.
func (r *Resolver) fetch(ctx context.Context, name string, qtype uint16) (*rrSet, error) {
	now := r.cfg.Now()
	s := &rrSet{}
	ttl := r.cfg.MaxTTL
	seen := []string{name}
	cur := name
	for query := 0; ; query++ {
		if query > r.cfg.MaxDepth {
			return nil, errTooDeep(name)
		}
		resp, err := r.exchange(ctx, cur, qtype)
		if err != nil {
			return nil, err
		}
		// Walk the chain inside this answer. Records are matched by owner
		// name, so a hostile answer cannot inject data for other names.
		for moved := true; moved; {
			moved = false
			for _, rr := range resp.Answer {
				c, ok := rr.(*dns.CNAME)
				if !ok || qtype == dns.TypeCNAME || !strings.EqualFold(c.Hdr.Name, cur) {
					continue
				}
				next := dns.CanonicalName(c.Target)
				for _, n := range seen {
					if n == next {
						return nil, errTooDeep(name)
					}
				}
				if len(seen) > r.cfg.MaxDepth {
					return nil, errTooDeep(name)
				}
				seen = append(seen, next)
				s.chain = append(s.chain, c)
				ttl = min(ttl, ttlOf(c))
				cur, moved = next, true
				break
			}
		}
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Rrtype == qtype && h.Class == dns.ClassINET && strings.EqualFold(h.Name, cur) {
				s.rrs = append(s.rrs, rr)
				ttl = min(ttl, ttlOf(rr))
			}
		}
		if len(s.rrs) > 0 {
			s.expires = now.Add(ttl)
			return s, nil
		}
		if resp.Rcode == dns.RcodeSuccess && !hasSOA(resp) && lastQueried(cur, resp) {
			// The server gave only the chain; ask the chain's end ourselves.
			continue
		}
		s.nx = resp.Rcode == dns.RcodeNameError
		s.expires = now.Add(min(ttl, r.negativeTTL(resp)))
		return s, nil
	}
}

// lastQueried reports whether resp was for a name other than cur, i.e. the
// chain moved past what this response was about and cur is still unasked.
func lastQueried(cur string, resp *dns.Msg) bool {
	return !strings.EqualFold(resp.Question[0].Name, cur)
}

func hasSOA(resp *dns.Msg) bool {
	for _, rr := range resp.Ns {
		if _, ok := rr.(*dns.SOA); ok {
			return true
		}
	}
	return false
}

// negativeTTL is min(SOA TTL, SOA MINIMUM) per RFC 2308 §5, or the
// configured default when the answer carries no SOA.
func (r *Resolver) negativeTTL(resp *dns.Msg) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(ttlOf(soa), time.Duration(soa.Minttl)*time.Second, r.cfg.MaxTTL)
		}
	}
	return r.cfg.NegativeTTL
}

func ttlOf(rr dns.RR) time.Duration { return time.Duration(rr.Header().Ttl) * time.Second }

func errTooDeep(name string) error {
	return &LookupError{Name: name, Err: ErrTooDeep}
}

// LookupError says which name a lookup failed for.
type LookupError struct {
	Name string
	Err  error
}

func (e *LookupError) Error() string { return e.Err.Error() + ": " + e.Name }
func (e *LookupError) Unwrap() error { return e.Err }
