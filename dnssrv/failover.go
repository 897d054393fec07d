package dnssrv

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Iterator walks a target list for one request (RFC 3263 §4.3): the
// caller sends to Next, and on a transport error, a timeout or a 503
// calls Failed and moves on. Targets on the shared blacklist are tried
// after all others (or not at all with Config.SkipBlacklisted), so one
// request's failure spares the next request the same wait. An Iterator
// belongs to one goroutine.
type Iterator struct {
	targets []Target
	bl      *Blacklist
	skip    bool
	pos     int  // next index to consider in this pass
	late    bool // second pass: the blacklisted ones
	cur     int  // index of the target Next returned last, -1 before
	tried   []bool
}

// Iterate resolves u and returns an iterator over its targets.
func (r *Resolver) Iterate(ctx context.Context, u *sip.Uri) (*Iterator, error) {
	ts, err := r.Resolve(ctx, u)
	if err != nil {
		return nil, err
	}
	return r.NewIterator(ts), nil
}

// IterateKey is Iterate in the deterministic order of ResolveKey.
func (r *Resolver) IterateKey(ctx context.Context, u *sip.Uri, key uint64) (*Iterator, error) {
	ts, err := r.ResolveKey(ctx, u, key)
	if err != nil {
		return nil, err
	}
	return r.NewIterator(ts), nil
}

// NewIterator walks targets with this resolver's blacklist.
func (r *Resolver) NewIterator(targets []Target) *Iterator {
	return &Iterator{targets: targets, bl: r.bl, skip: r.cfg.SkipBlacklisted, cur: -1, tried: make([]bool, len(targets))}
}

// Next returns the next target to try, or false when none is left.
func (it *Iterator) Next() (Target, bool) {
	for {
		if it.pos >= len(it.targets) {
			if it.late || it.skip {
				return Target{}, false
			}
			it.late, it.pos = true, 0
			continue
		}
		i := it.pos
		it.pos++
		if it.tried[i] {
			continue
		}
		// First pass: only targets not listed. Second pass: the rest.
		if !it.late && it.bl.Contains(it.targets[i]) {
			continue
		}
		it.tried[i], it.cur = true, i
		return it.targets[i], true
	}
}

// Failed blacklists the target Next returned last, for retryAfter (a
// 503's Retry-After) or the blacklist's TTL when retryAfter <= 0.
func (it *Iterator) Failed(retryAfter time.Duration) {
	if it.cur >= 0 {
		it.bl.Add(it.targets[it.cur], retryAfter)
	}
}

// Succeeded takes the target Next returned last off the blacklist.
func (it *Iterator) Succeeded() {
	if it.cur >= 0 {
		it.bl.Remove(it.targets[it.cur])
	}
}

// Targets is the full list, in resolution order, whatever was tried.
func (it *Iterator) Targets() []Target { return it.targets }

// ShouldFailover says whether a request that got res or err should go to
// the next target: on any transport error or timeout, and on a 503
// (RFC 3263 §4.3). A context canceled by the caller is not a failover.
func ShouldFailover(res *sip.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return res != nil && res.StatusCode == sip.StatusServiceUnavailable
}

// RetryAfter reads a response's Retry-After header in seconds; zero if
// there is none or it does not parse.
func RetryAfter(res *sip.Response) time.Duration {
	if res == nil {
		return 0
	}
	h := res.GetHeader("Retry-After")
	if h == nil {
		return 0
	}
	v := h.Value()
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(v[:end])
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 86400)) * time.Second
}

// RequestKey hashes what stays the same across retransmissions of one
// request (Call-ID, CSeq, top Via branch) for ResolveKey, so a stateless
// proxy sends them all to the same target (RFC 3263 §4.4).
func RequestKey(req *sip.Request) uint64 {
	h := fnv.New64a()
	if c := req.CallID(); c != nil {
		h.Write([]byte(c.Value()))
	}
	h.Write([]byte{0})
	if c := req.CSeq(); c != nil {
		h.Write([]byte(c.Value()))
	}
	h.Write([]byte{0})
	if v := req.Via(); v != nil {
		if br, ok := v.Params.Get("branch"); ok {
			h.Write([]byte(br))
		}
	}
	return h.Sum64()
}
