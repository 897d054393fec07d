package partition

import (
	"context"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// Sticky keys carry an explicit candidate list (ownership.Sticky has no
// placement function), so the ownership layer never recomputes it. The
// replacer does, on every node, when the committed membership changes:
//
//   - Trigger: ownership.MemberLister.WatchMembers, filtered by a
//     signature of what placement reads (IDs, roles, weights). Health is
//     left out: a flapping node changes no ranking, and Sticky already
//     passes over an unhealthy candidate.
//   - Settle: a pass starts once the signature has held for ReplaceDelay,
//     so a join and the weight the new node registers right after it make
//     one pass, not two.
//   - Who writes: every Ensure is a Raft entry, and raftowner runs them one
//     at a time on the leader, so N nodes writing every key would cost N×.
//     A node writes a key when it is the key's committed owner or the first
//     healthy node of the key's new ranking. Both are read from committed
//     state, so each key gets one writer, two when its owner is not its
//     placed owner (after a sticky failover), and still at least one when
//     an owner move races the passes (the placed-first rule does not
//     depend on the owner). The work spreads over the farm like the keys.
//   - A pass is serial: raftowner serialises Ensures anyway, and one at a
//     time leaves room for Adds and the leader's own commits. A newer
//     membership aborts it; the keys this node wrote in the aborted pass
//     are written again in the next one whoever is responsible, since the
//     old list may have landed after another node's new one.
//   - The current owner stays a candidate (Sticky keeps an owner only
//     while it is in the list): the ranking lists every member, and an
//     owner this node's view of the membership does not show yet is
//     appended.
type replacer struct {
	p         *Partitioner
	delay     time.Duration
	wake      chan struct{}
	quit      chan struct{}
	done      chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	stopWatch func()

	// Touched only by run.
	sig     string          // membership the keys were last placed over
	carried map[string]bool // lists this node wrote that may land late: write again

	passes, aborted, ensures, failures atomic.Uint64
}

// ReplaceStats counts the re-placement of sticky keys on this node.
type ReplaceStats struct {
	// Passes is the number of completed passes over the keys (one per
	// settled membership change), Aborted those cut short by a newer one.
	Passes, Aborted uint64
	// Ensures is the number of keys this node re-placed (one ownership
	// commit each); Failures those whose Ensure failed (logged).
	Ensures, Failures uint64
}

func startReplacer(p *Partitioner, ml ownership.MemberLister) *replacer {
	r := &replacer{p: p, delay: p.cfg.ReplaceDelay, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), carried: map[string]bool{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	// The membership at start is the baseline: the keys were placed over
	// it, or over an older one another node's replacer handled.
	r.sig = signature(p.src.Members())
	r.stopWatch = ml.WatchMembers(func([]ownership.Member) { r.signal() })
	go r.run()
	return r
}

func (r *replacer) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *replacer) stop() {
	r.stopWatch()
	r.cancel() // first: a pass that sees quit finds the context ended
	close(r.quit)
	<-r.done
}

func (r *replacer) stats() ReplaceStats {
	return ReplaceStats{Passes: r.passes.Load(), Aborted: r.aborted.Load(),
		Ensures: r.ensures.Load(), Failures: r.failures.Load()}
}

func (r *replacer) run() {
	defer close(r.done)
	for {
		select {
		case <-r.quit:
			return
		case <-r.wake:
		}
		if signature(r.p.src.Members()) == r.sig {
			continue
		}
		ms, sig, ok := r.settle()
		if !ok {
			return
		}
		if sig == r.sig {
			continue
		}
		switch {
		case r.pass(ms, sig):
			r.sig = sig
			r.passes.Add(1)
		case r.ctx.Err() != nil:
			return
		default:
			r.aborted.Add(1)
			r.signal()
		}
	}
}

// settle waits until the membership signature has stayed the same for the
// delay; health changes in between do not restart the wait.
func (r *replacer) settle() ([]Member, string, bool) {
	ms := r.p.src.Members()
	sig := signature(ms)
	t := time.NewTimer(r.delay)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return nil, "", false
		case <-r.wake:
			if now := r.p.src.Members(); signature(now) != sig {
				ms, sig = now, signature(now)
				t.Reset(r.delay)
			}
		case <-t.C:
			// Fresh, for the current health verdicts.
			ms = r.p.src.Members()
			return ms, signature(ms), true
		}
	}
}

// pass re-places every committed key this node is responsible for over
// ms. It reports false when it stopped early: closed, or the membership
// changed again.
func (r *replacer) pass(ms []Member, sig string) bool {
	p, start := r.p, time.Now()
	self := p.m.LocalID()
	down := make(map[cluster.NodeID]bool, len(ms))
	member := make(map[cluster.NodeID]bool, len(ms))
	ranked := make([]Member, len(ms))
	for i, m := range ms {
		down[m.ID], member[m.ID] = m.Down, true
		m.Down = false // as Add and place: health is not placement
		ranked[i] = m
	}
	pl, err := p.placement(ranked, p.cfg.Options.LoadFactor != 0)
	if err != nil {
		p.cfg.Logger.Warn("partition: cannot re-place sticky keys", "err", err)
		return true // the same membership would fail again
	}
	// written: key → whether this node was responsible for it.
	carried, written := r.carried, map[string]bool{}
	abort := func() bool {
		r.carried = carried
		for k := range written {
			r.carried[k] = true
		}
		return false
	}
	for _, key := range p.Keys() {
		select {
		case <-r.quit:
			return abort()
		case <-r.wake:
			if signature(p.src.Members()) != sig {
				return abort()
			}
		default:
		}
		res := p.Resource(key)
		claim, ok := p.m.Owner(res)
		if !ok {
			continue // removed meanwhile
		}
		want := pl.Rank(key)
		var first cluster.NodeID
		for _, id := range want {
			if !down[id] {
				first = id
				break
			}
		}
		responsible := claim.Node == self || first == self
		if !responsible && !carried[key] {
			continue
		}
		if o := claim.Node; o != "" && !member[o] && r.isMember(o) {
			want = append(want, o)
		}
		if len(want) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, ensureTimeout)
		err := p.m.Ensure(ctx, ownership.Spec{Name: res, Policy: ownership.Sticky, Candidates: want})
		cancel()
		written[key] = responsible
		r.ensures.Add(1)
		if err != nil {
			if r.ctx.Err() != nil {
				return abort()
			}
			r.failures.Add(1)
			p.cfg.Logger.Warn("partition: re-place sticky key", "key", key, "err", err)
		}
	}
	p.cfg.Logger.Info("partition: re-placed sticky keys over the new membership",
		"members", len(ms), "keys", len(written), "took", time.Since(start))
	// Completed. A list written here may still land after a newer
	// membership's: write the keys again next time, unless this node was
	// only finishing a previous pass's work.
	r.carried = map[string]bool{}
	for k, resp := range written {
		if resp {
			r.carried[k] = true
		}
	}
	return true
}

// isMember reports whether id is in the membership now: an owner that
// joined after the pass read the membership.
func (r *replacer) isMember(id cluster.NodeID) bool {
	return slices.ContainsFunc(r.p.src.Members(), func(m Member) bool { return m.ID == id })
}

// ensureTimeout bounds one re-placement commit; a key that fails is
// logged and the pass goes on.
const ensureTimeout = 30 * time.Second

// signature is what placement reads from a membership: IDs, roles and
// weights, not health.
func signature(ms []Member) string {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	var b []byte
	for _, m := range ms {
		b = append(b, m.ID...)
		b = append(b, 0, byte(m.Role))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.weight()))
	}
	return string(b)
}
