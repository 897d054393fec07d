package usrloc

import "time"

// wireRec is a binding as replicated: strings may alias a message buffer,
// and expiry travels as the time left, so no node trusts another's wall
// clock for it.
type wireRec struct {
	AOR       string
	F         fields
	Remaining time.Duration // live: until expiry; tombstone: until purge
	HLC       HLC
	Node      string
	Tombstone bool
}

// merge applies a binding version from another node: it replaces the local
// version when it is newer (see newer), and is ignored otherwise. It
// reports whether the store changed.
func (s *Store) merge(w *wireRec) (bool, error) {
	s.clock.Observe(w.HLC)
	if w.Remaining <= 0 || w.AOR == "" {
		return false, nil
	}
	now := s.now().UnixNano()
	node := s.nodes.id(w.Node)
	if node == 0 {
		return false, ErrTooLarge // the node table is full: refuse rather than lose the stamp
	}
	r, err := s.pack(&w.F, now+int64(w.Remaining), w.HLC, node, w.Tombstone)
	if err != nil {
		return false, err
	}
	sh, h := s.shardOf(w.AOR)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var buf [entryBuf]rec
	ent, recs := entry(sh, h, w.AOR, &buf)
	idx := findKey(recs, &r)
	var ev Event
	ev.Remote = true
	ev.Kind = Added
	var old *rec
	if idx >= 0 {
		old = &recs[idx]
		if !newer(&r, old, s.nodes) {
			return false, nil
		}
		switch {
		case r.tombstone() && old.tombstone():
			ev.Kind = 0
		case r.tombstone():
			ev.Kind = Removed
		case !old.tombstone():
			ev.Kind = Updated
		}
	} else if r.tombstone() {
		ev.Kind = 0
	}
	watch := ev.Kind != 0 && s.hasWatchers()
	if watch {
		// w.AOR may alias a pooled message: the event gets a copy.
		if ev.Kind == Removed {
			s.fill(&ev.Binding, ent.key(), old)
		} else {
			s.fill(&ev.Binding, ent.key(), &r)
		}
	}
	// Merges do not enforce MaxContacts: the origin did, and refusing
	// here would leave the nodes disagreeing for good.
	recs = s.put(sh, &ent, recs, idx, r)
	sh.store(&ent, recs)
	if watch {
		s.emit([]Event{ev})
	}
	return true, nil
}

// toWire describes r for replication at time now.
func (s *Store) toWire(aor string, r *rec, now int64, w *wireRec) {
	*w = wireRec{
		AOR: aor,
		F: fields{Contact: r.seg(segContact), Received: r.seg(segReceived), CallID: r.seg(segCallID),
			Instance: r.seg(segInstance), UserAgent: s.pick(r.ua, r, segUA), Path: s.pick(r.path, r, segPath),
			Socket: s.pick(r.socket, r, segSocket), RegID: r.regID, CSeq: r.cseq, Q: r.q, Flags: uint8(r.flags)},
		Remaining: time.Duration(r.expires - now),
		HLC:       r.hlc,
		Node:      s.nodes.str(uint32(r.node)),
		Tombstone: r.tombstone(),
	}
}

// bucketDigest returns the digest of one bucket: how many versions it holds
// (tombstones included) and the sum of their hashes.
func (s *Store) bucketDigest(b int) (uint32, uint64) {
	sh := &s.shards[b]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.count, sh.sum
}

// digests fills d with every bucket's digest.
func (s *Store) digests(d *[nBuckets]bucketSum) {
	for b := range s.shards {
		d[b].count, d[b].sum = s.bucketDigest(b)
	}
}

type bucketSum struct {
	count uint32
	sum   uint64
}

// appendBucket appends the versions of bucket b, tombstones included, as
// wire records that stay valid after the shard lock (their strings are the
// store's immutable ones and a copy of the AORs).
func (s *Store) appendBucket(b int, dst []wireRec) []wireRec {
	sh := &s.shards[b]
	now := s.now().UnixNano()
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return collectAORs(&sh.aors, dst,
		func(dst []wireRec, r *rec) []wireRec { return s.appendWire(dst, r, now) },
		func(w *wireRec, aor string) { w.AOR = aor })
}

// appendWire appends r as a wire record without its AOR.
func (s *Store) appendWire(dst []wireRec, r *rec, now int64) []wireRec {
	if r.expires <= now {
		return dst
	}
	dst = append(dst, wireRec{})
	s.toWire("", r, now, &dst[len(dst)-1])
	return dst
}

// dominates reports whether this store holds w's binding at w's version or
// a newer one (or w has expired here already).
func (s *Store) dominates(w *wireRec) bool {
	if w.Remaining <= s.cfg.ExpiryResolution {
		return true // may have expired here a moment earlier
	}
	r, err := s.pack(&fields{Contact: w.F.Contact, Instance: w.F.Instance, RegID: w.F.RegID, CallID: w.F.CallID, CSeq: w.F.CSeq}, 0, w.HLC, 0, w.Tombstone)
	if err != nil {
		return false
	}
	node := s.nodes.id(w.Node)
	r.node = uint16(node)
	sh, h := s.shardOf(w.AOR)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sl := sh.aors.find(h, w.AOR)
	if sl == nil {
		return false
	}
	check := func(have *rec) (bool, bool) {
		if !have.sameKey(&r) {
			return false, false
		}
		return true, have.hlc == r.hlc && have.node == r.node || !newer(&r, have, s.nodes)
	}
	if found, ok := check(&sl.head); found {
		return ok
	}
	tail := sl.tail()
	for i := range tail {
		if found, ok := check(&tail[i]); found {
			return ok
		}
	}
	return false
}

// appendBucketBindings appends the live bindings of bucket b.
func (s *Store) appendBucketBindings(b int, dst []Binding) []Binding {
	sh := &s.shards[b]
	now := s.now().UnixNano()
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return collectAORs(&sh.aors, dst,
		func(dst []Binding, r *rec) []Binding { return s.appendLive(dst, "", r, now) },
		func(b *Binding, aor string) { b.AOR = aor })
}
