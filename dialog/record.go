package dialog

import (
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// record is a dialog's replicated state. Every field is merged by a rule
// that is commutative, associative and idempotent (state only grows, sets
// only grow, ties break by a total order), so nodes that saw the same
// updates in any order, any number of times, hold the same record. That is
// what lets a BYE on node B end a dialog created on node A, lets a resync
// overlap live traffic without buffering, and makes counts derived from the
// records exact.
type record struct {
	id     ID
	origin cluster.NodeID
	toTag  string
	state  State
	flags  uint8
	// Wall-clock Unix nanoseconds; 0 = not yet.
	created, answered, ended int64
	// maxDur overrides Config.MaxDuration for this dialog (0 = default).
	maxDur    int64
	reason    Reason
	code      uint16
	hungUp    Party
	termBy    cluster.NodeID
	termEpoch uint64
	// adopt is the largest epoch of an owner of the origin's node resource
	// that took this dialog over while it was live. A timer's terminate
	// from an older epoch is fenced: that owner had been replaced.
	adopt   uint64
	members []membership
	vars    []variable

	// Local bookkeeping, never sent.
	timerAt  int64 // deadline in the heap (0 = not scheduled)
	timerIdx int   // index in the heap, -1 when absent
	gcAt     int64 // tombstone removal time
}

const (
	flagAcked uint8 = 1 << iota
	flagCanceled
	// flagReported: an owner fired the terminate hook.
	flagReported
	flagsKnown = flagAcked | flagCanceled | flagReported
)

// membership is one profile a dialog joined; removed wins over added, so a
// dialog leaves a profile at most once on every node.
type membership struct {
	key     ProfileKey
	removed bool
}

// variable is last-writer-wins by (clock, node), then value so that even
// a repeated (clock, node) resolves the same everywhere.
type variable struct {
	key, val string
	clock    uint64
	node     cluster.NodeID
}

func (r *record) has(f uint8) bool { return r.flags&f != 0 }

// live reports whether the dialog counts: not terminated.
func (r *record) live() bool { return r.state != Terminated }

// active lists the profile keys the record counts in now.
func (r *record) active(dst []ProfileKey) []ProfileKey {
	if !r.live() {
		return dst
	}
	for _, m := range r.members {
		if !m.removed {
			dst = append(dst, m.key)
		}
	}
	return dst
}

// fencedBy reports whether r's terminate is a timer's from an owner older
// than the adoption epoch adopt.
func (r *record) fencedBy(adopt uint64) bool {
	return r.state == Terminated && r.reason.timeout() && r.termEpoch < adopt
}

// merge folds o into r and reports whether r changed and whether o's
// terminate was fenced.
func (r *record) merge(o *record) (changed, fenced bool) {
	if r.origin == "" && o.origin != "" {
		r.origin, changed = o.origin, true
	}
	if o.created != 0 && (r.created == 0 || o.created < r.created) {
		r.created, changed = o.created, true
	}
	if o.maxDur > r.maxDur {
		r.maxDur, changed = o.maxDur, true
	}
	if o.adopt > r.adopt {
		r.adopt, changed = o.adopt, true
	}
	// The winning fork: the earliest answer, then the smaller tag.
	if o.toTag != "" && (r.toTag == "" || o.answered < r.answered || o.answered == r.answered && o.toTag < r.toTag) {
		if r.toTag != o.toTag || r.answered != o.answered {
			r.toTag, r.answered, changed = o.toTag, o.answered, true
		}
	}
	fenced = o.fencedBy(r.adopt)
	st := o.state
	if fenced {
		st = Early
		if o.answered != 0 {
			st = Confirmed
		}
	}
	if st > r.state {
		r.state, changed = st, true
	}
	// A terminate r holds may have been fenced by an adoption learnt
	// since. The state stays Terminated: the adopting owner ends the call
	// itself, and its terminate, newer, displaces the fenced one.
	if o.state == Terminated && !fenced && o.termBefore(r) {
		if r.ended != o.ended || r.reason != o.reason || r.termBy != o.termBy || r.termEpoch != o.termEpoch || r.code != o.code || r.hungUp != o.hungUp {
			r.ended, r.reason, r.code, r.hungUp, r.termBy, r.termEpoch =
				o.ended, o.reason, o.code, o.hungUp, o.termBy, o.termEpoch
			changed = true
		}
	}
	if f := r.flags | (o.flags & flagsKnown); f != r.flags {
		r.flags, changed = f, true
	}
	for _, m := range o.members {
		if r.addMember(m) {
			changed = true
		}
	}
	for _, v := range o.vars {
		if r.setVar(v) {
			changed = true
		}
	}
	return changed, fenced
}

// termBefore orders terminate records; r keeps the first. A BYE, CANCEL,
// rejection or API end comes before any timer's (those cannot be fenced);
// among timers', the newest owner's epoch first, so a deposed owner's
// never displaces its successor's; then the earliest end, the smaller
// node ID, the smaller reason. It is a total order, so every node keeps
// the same one whatever order the records came in.
func (o *record) termBefore(r *record) bool {
	if r.reason == ReasonNone {
		return true
	}
	if ot, rt := o.reason.timeout(), r.reason.timeout(); ot != rt {
		return rt
	}
	if o.termEpoch != r.termEpoch && o.reason.timeout() {
		return o.termEpoch > r.termEpoch
	}
	if o.ended != r.ended {
		return o.ended < r.ended
	}
	if o.termBy != r.termBy {
		return o.termBy < r.termBy
	}
	if o.reason != r.reason {
		return o.reason < r.reason
	}
	if o.termEpoch != r.termEpoch {
		return o.termEpoch > r.termEpoch
	}
	if o.code != r.code {
		return o.code < r.code
	}
	return o.hungUp < r.hungUp
}

func (r *record) addMember(m membership) bool {
	for i := range r.members {
		if r.members[i].key == m.key {
			if m.removed && !r.members[i].removed {
				r.members[i].removed = true
				return true
			}
			return false
		}
	}
	r.members = append(r.members, m)
	return true
}

func (r *record) setVar(v variable) bool {
	for i := range r.vars {
		x := &r.vars[i]
		if x.key == v.key {
			if v.clock > x.clock || v.clock == x.clock && (v.node > x.node || v.node == x.node && v.val > x.val) {
				*x = v
				return true
			}
			return false
		}
	}
	r.vars = append(r.vars, v)
	return true
}

// maxClock is the highest variable clock, for the next local write.
func (r *record) maxClock() uint64 {
	var c uint64
	for _, v := range r.vars {
		c = max(c, v.clock)
	}
	return c
}

// clone copies the replicated part of r.
func (r *record) clone() *record {
	c := *r
	c.members = append([]membership(nil), r.members...)
	c.vars = append([]variable(nil), r.vars...)
	c.timerIdx, c.timerAt, c.gcAt = -1, 0, 0
	return &c
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// info snapshots r.
func (r *record) info() Info {
	in := Info{ID: r.id, ToTag: r.toTag, Origin: r.origin, State: r.state,
		Created: unixTime(r.created), Answered: unixTime(r.answered), Ended: unixTime(r.ended),
		Acked: r.has(flagAcked), Reason: r.reason, Code: int(r.code), HungUp: r.hungUp,
		TerminatedBy: r.termBy, Epoch: ownership.Epoch(r.termEpoch)}
	for _, m := range r.members {
		if !m.removed {
			in.Profiles = append(in.Profiles, m.key)
		}
	}
	if len(r.vars) > 0 {
		in.Vars = make(map[string]string, len(r.vars))
		for _, v := range r.vars {
			in.Vars[v.key] = v.val
		}
	}
	return in
}
