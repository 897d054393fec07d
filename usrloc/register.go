package usrloc

import (
	"fmt"
	"time"
)

// Registration is one REGISTER's effect on an AOR (RFC 3261 §10.3 steps
// 6–8), applied atomically: either every contact is applied or none.
type Registration struct {
	AOR    string
	CallID string
	CSeq   uint32
	// RemoveAll is "Contact: *" with "Expires: 0".
	RemoveAll bool
	Contacts  []ContactUpdate
}

// ContactUpdate is one Contact of a REGISTER.
type ContactUpdate struct {
	URI      string
	Instance string
	RegID    uint32
	// Q in thousandths, 0..1000; 0 is the lowest priority.
	Q uint16
	// Expires is the granted duration; 0 removes the binding.
	Expires   time.Duration
	Received  string
	Socket    string
	Path      string
	UserAgent string
	Flags     uint8
}

// Register applies reg and appends the AOR's bindings afterwards to dst;
// their AOR is reg.AOR itself.
//
// A contact whose binding carries the same Call-ID and a higher CSeq fails
// the whole registration with ErrCSeqOrder; one with the same Call-ID and
// the same CSeq is a retransmission and leaves its binding as it is, so a
// retransmitted REGISTER gets the same answer without a second write.
func (s *Store) Register(reg Registration, dst []Binding) ([]Binding, error) {
	if reg.AOR == "" || (reg.RemoveAll && len(reg.Contacts) > 0) {
		return dst, ErrBadRegistration
	}
	select {
	case <-s.quit:
		return dst, ErrClosed
	default:
	}
	nowT := s.now()
	now := nowT.UnixNano()
	sh, h := s.shardOf(reg.AOR)
	// Small fixed buffers keep a one- or two-contact REGISTER's working
	// lists off the heap.
	var changedBuf [2]rec
	changed := changedBuf[:0]
	sh.mu.Lock()
	var buf [entryBuf]rec
	ent, recs := entry(sh, h, reg.AOR, &buf)

	// Check every contact before changing anything (step 7: the update is
	// aborted as a whole).
	type plan struct {
		hasOld bool
		old    rec // the binding replaced, when hasOld
		r      rec
	}
	var planBuf [2]plan
	plans := planBuf[:0]
	if reg.RemoveAll {
		for i := range recs {
			r := &recs[i]
			if r.tombstone() {
				continue
			}
			if r.seg(segCallID) == reg.CallID && reg.CSeq <= r.cseq {
				if reg.CSeq == r.cseq {
					continue // retransmission
				}
				sh.mu.Unlock()
				return dst, ErrCSeqOrder
			}
			f := fields{Contact: r.seg(segContact), CallID: reg.CallID, Instance: r.seg(segInstance), RegID: r.regID, CSeq: reg.CSeq}
			t, err := s.pack(&f, now+int64(s.cfg.TombstoneTTL), 0, s.nodeID, true)
			if err != nil {
				sh.mu.Unlock()
				return dst, err
			}
			plans = append(plans, plan{hasOld: true, old: *r, r: t})
		}
	}
	for i := range reg.Contacts {
		c := &reg.Contacts[i]
		tomb := c.Expires <= 0
		f := fields{Contact: c.URI, Received: c.Received, CallID: reg.CallID, Instance: c.Instance,
			UserAgent: c.UserAgent, Path: c.Path, Socket: c.Socket, RegID: c.RegID, CSeq: reg.CSeq, Q: c.Q, Flags: c.Flags}
		exp := now + int64(c.Expires)
		if tomb {
			exp = now + int64(s.cfg.TombstoneTTL)
		}
		r, err := s.pack(&f, exp, 0, s.nodeID, tomb)
		if err != nil {
			sh.mu.Unlock()
			return dst, err
		}
		p := plan{r: r}
		if idx := findKey(recs, &r); idx >= 0 {
			p.hasOld, p.old = true, recs[idx]
			old := &recs[idx]
			if old.seg(segCallID) == reg.CallID && reg.CSeq <= old.cseq {
				if reg.CSeq == old.cseq {
					continue
				}
				sh.mu.Unlock()
				return dst, ErrCSeqOrder
			}
			if tomb && old.tombstone() {
				continue // removing what is not there
			}
		} else if tomb {
			continue
		}
		plans = append(plans, p)
	}
	// Count the live bindings the registration leaves.
	live := 0
	for i := range recs {
		if !recs[i].tombstone() && recs[i].expires > now {
			live++
		}
	}
	for _, p := range plans {
		wasLive := p.hasOld && !p.old.tombstone() && p.old.expires > now
		isLive := !p.r.tombstone()
		if wasLive && !isLive {
			live--
		} else if !wasLive && isLive {
			live++
		}
	}
	if live > s.cfg.MaxContacts {
		sh.mu.Unlock()
		return dst, fmt.Errorf("%w: %d > %d", ErrTooManyContacts, live, s.cfg.MaxContacts)
	}

	var evBuf [2]Event
	evs := evBuf[:0]
	watch := s.hasWatchers()
	for _, p := range plans {
		r := p.r
		var old *rec
		if p.hasOld {
			old = &p.old
		}
		// A new version must order after the one it replaces on every
		// node, whatever this node's clock says.
		if old != nil {
			s.clock.Observe(old.hlc)
		}
		r.hlc = s.clock.Now()
		if watch {
			ev := Event{Kind: Added}
			switch {
			case r.tombstone():
				ev.Kind = Removed
				s.fill(&ev.Binding, ent.key(), old)
			case old != nil && !old.tombstone():
				ev.Kind = Updated
			}
			if ev.Kind != Removed {
				s.fill(&ev.Binding, ent.key(), &r)
			}
			evs = append(evs, ev)
		}
		recs = s.put(sh, &ent, recs, findKey(recs, &r), r)
		changed = append(changed, r)
	}
	sh.store(&ent, recs)
	s.emit(evs)
	for i := range recs {
		r := &recs[i]
		if r.tombstone() || r.expires <= now {
			continue
		}
		dst = append(dst, Binding{})
		s.fill(&dst[len(dst)-1], reg.AOR, r)
	}
	sh.mu.Unlock()
	if fn := s.onLocal.Load(); fn != nil {
		for i := range changed {
			(*fn)(reg.AOR, changed[i])
		}
	}
	return dst, nil
}
