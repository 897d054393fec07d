package dialog

import (
	"time"

	"github.com/sipha/sipha/cluster"
)

// Begin starts tracking a dialog in state Early, as the initial INVITE
// does. Beginning a known dialog changes nothing (a retransmission); one
// that already ended returns ErrEnded.
func (t *Tracker) Begin(id ID) error {
	if id.CallID == "" || id.FromTag == "" {
		return ErrBadMessage
	}
	var ended bool
	e, err := t.change(id, true, func(r *record) bool {
		if r.state != 0 {
			ended = r.state == Terminated
			return false
		}
		r.origin, r.state, r.created = t.self, Early, t.now()
		return true
	})
	t.run(e)
	if err == nil && ended {
		err = ErrEnded
	}
	return err
}

// Answer confirms the dialog with the callee's tag, as a 2xx to the INVITE
// does. The first answer wins; later ones (other forks) change nothing.
func (t *Tracker) Answer(id ID, toTag string) error {
	return t.do(id, func(r *record) bool {
		if r.state != Early {
			return false
		}
		r.state, r.toTag, r.answered = Confirmed, toTag, t.now()
		return true
	})
}

// Ack records the ACK of the 2xx.
func (t *Tracker) Ack(id ID) error {
	return t.do(id, func(r *record) bool {
		if r.has(flagAcked) || r.state != Confirmed {
			return false
		}
		r.flags |= flagAcked
		return true
	})
}

// Cancel records a CANCEL. The dialog ends with ReasonCancel at the final
// failure response that follows; if a 2xx crosses the CANCEL instead, the
// call goes on until its BYE (RFC 3261 §9.1).
func (t *Tracker) Cancel(id ID) error {
	return t.do(id, func(r *record) bool {
		if r.has(flagCanceled) || r.state != Early {
			return false
		}
		r.flags |= flagCanceled
		return true
	})
}

// Reject ends an early dialog with a final failure response code.
func (t *Tracker) Reject(id ID, code int) error {
	return t.do(id, func(r *record) bool {
		if r.state != Early {
			return false
		}
		reason := ReasonRejected
		if r.has(flagCanceled) || code == 487 {
			reason = ReasonCancel
		}
		t.end(r, reason, code, PartyNone, 0)
		return true
	})
}

// Bye ends the dialog by a BYE from party.
func (t *Tracker) Bye(id ID, from Party) error {
	return t.do(id, func(r *record) bool {
		if r.state == Terminated {
			return false
		}
		t.end(r, ReasonBye, 0, from, 0)
		return true
	})
}

// Terminate ends the dialog on the application's request (ReasonAPI).
func (t *Tracker) Terminate(id ID) error {
	return t.do(id, func(r *record) bool {
		if r.state == Terminated {
			return false
		}
		t.end(r, ReasonAPI, 0, PartyNone, 0)
		return true
	})
}

// SetVar sets a per-dialog variable, replicated with the dialog; the last
// write (by a Lamport clock, then node ID) wins cluster-wide.
func (t *Tracker) SetVar(id ID, key, value string) error {
	return t.do(id, func(r *record) bool {
		return r.setVar(variable{key: key, val: value, clock: r.maxClock() + 1, node: t.self})
	})
}

// Var returns a per-dialog variable.
func (t *Tracker) Var(id ID, key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.dialogs[id]; r != nil {
		for _, v := range r.vars {
			if v.key == key {
				return v.val, true
			}
		}
	}
	return "", false
}

// SetMaxDuration gives one dialog its own maximum duration (it can only be
// raised once set, so that replicas agree).
func (t *Tracker) SetMaxDuration(id ID, d time.Duration) error {
	return t.do(id, func(r *record) bool {
		if int64(d) <= r.maxDur {
			return false
		}
		r.maxDur = int64(d)
		return true
	})
}

func (t *Tracker) do(id ID, fn func(r *record) bool) error {
	var ended bool
	e, err := t.change(id, false, func(r *record) bool {
		ended = r.state == Terminated
		return fn(r)
	})
	t.run(e)
	if err == nil && ended {
		return ErrEnded
	}
	return err
}

// end terminates r. The caller holds the lock.
func (t *Tracker) end(r *record, reason Reason, code int, by Party, epoch uint64) {
	if epoch == 0 {
		epoch = t.knownEpochLocked(r.origin)
	}
	r.state, r.ended, r.reason, r.code, r.hungUp = Terminated, t.now(), reason, uint16(code), by
	r.termBy, r.termEpoch = t.self, epoch
}

func (t *Tracker) now() int64 { return t.cfg.Now().UnixNano() }

// deadline is when r's timer fires and for which reason.
func (t *Tracker) deadline(r *record) (int64, Reason) {
	switch r.state {
	case Early:
		return r.created + int64(t.cfg.EarlyTimeout), ReasonEarlyTimeout
	case Confirmed:
		maxDur := r.maxDur
		if maxDur == 0 {
			maxDur = int64(t.cfg.MaxDuration)
		}
		end := r.answered + maxDur
		if !r.has(flagAcked) {
			if ack := r.answered + int64(t.cfg.AckTimeout); ack < end {
				return ack, ReasonNoAck
			}
		}
		return end, ReasonMaxDuration
	}
	return 0, ReasonNone
}

// expire runs r's timer if this node still owns it, with the epoch that
// fences the action.
func (t *Tracker) expire(id ID, origin cluster.NodeID) {
	ep, ok := t.own.Held(nodeResource(origin))
	if !ok {
		t.mu.Lock()
		if r := t.dialogs[id]; r != nil && (r.live() || !r.has(flagReported)) {
			t.retryLocked(r)
		}
		t.mu.Unlock()
		return
	}
	e, _ := t.change(id, false, func(r *record) bool {
		if r.state == Terminated {
			// Ended while the lease had lapsed: the change runs the
			// bookkeeping again, which fires the terminate hook.
			return !r.has(flagReported)
		}
		at, reason := t.deadline(r)
		if t.now() < at {
			t.schedule(r) // moved on (an ACK, a longer maximum)
			return false
		}
		t.end(r, reason, 0, PartyNone, uint64(ep))
		t.stats.timeouts.Add(1)
		return true
	})
	t.run(e)
}
