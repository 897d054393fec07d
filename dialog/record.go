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
	members   []membership
	vars      []variable

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

// variable is last-writer-wins by (clock, node).
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

// merge folds o into r and reports whether r changed. fenced tells whether
// o's terminate must be ignored (a timer's from a deposed owner).
func (r *record) merge(o *record, fenced bool) bool {
	changed := false
	if r.origin == "" && o.origin != "" {
		r.origin, changed = o.origin, true
	}
	if o.created != 0 && (r.created == 0 || o.created < r.created) {
		r.created, changed = o.created, true
	}
	if o.maxDur > r.maxDur {
		r.maxDur, changed = o.maxDur, true
	}
	// The winning fork: the earliest answer, then the smaller tag.
	if o.toTag != "" && (r.toTag == "" || o.answered < r.answered || o.answered == r.answered && o.toTag < r.toTag) {
		if r.toTag != o.toTag || r.answered != o.answered {
			r.toTag, r.answered, changed = o.toTag, o.answered, true
		}
	}
	st := o.state
	if st == Terminated && fenced {
		st = Confirmed
		if o.answered == 0 {
			st = Early
		}
	}
	if st > r.state {
		r.state, changed = st, true
	}
	if o.state == Terminated && !fenced && o.termBefore(r) {
		r.ended, r.reason, r.code, r.hungUp, r.termBy, r.termEpoch =
			o.ended, o.reason, o.code, o.hungUp, o.termBy, o.termEpoch
		changed = true
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
	return changed
}

// termBefore orders terminate records: the one r should keep is the
// earliest end, then the smaller node ID, then the smaller reason.
func (o *record) termBefore(r *record) bool {
	if r.reason == ReasonNone {
		return true
	}
	if o.ended != r.ended {
		return o.ended < r.ended
	}
	if o.termBy != r.termBy {
		return o.termBy < r.termBy
	}
	return o.reason < r.reason
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
			if v.clock > x.clock || v.clock == x.clock && v.node > x.node {
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
