package usrloc

import (
	"time"

	"github.com/sipha/sipha/cluster"
)

// A peer silent for longer than TombstoneTTL may have deleted bindings
// whose tombstones are purged by now, and may itself hold tombstones this
// node no longer has: merging would resurrect what either side deleted.
// So a returning peer's versions that are older than its absence and that
// this node does not hold are refused, and a node that was cut off from
// every peer that long pulls every bucket again from a synced peer and
// drops its own versions older than the absence that the donor did not
// send (a full verified resync instead of a merge).

// awayMark: versions from a returned peer older than before and unknown
// here are refused until until (Unix ns). It lasts a TombstoneTTL, not one
// pull: every later repair with the peer must refuse them too.
type awayMark struct {
	before HLC
	until  int64
}

// staleFrom returns the mark of peer, if still in force. r.mu must be held.
func (r *Replicator) staleFromLocked(peer cluster.NodeID) HLC {
	m, ok := r.awayFrom[peer]
	if !ok {
		return 0
	}
	if r.cfg.Now().UnixNano() > m.until {
		delete(r.awayFrom, peer)
		return 0
	}
	return m.before
}

type seenKey struct {
	aor uint64
	key uint64
}

func keyOfWire(w *wireRec) seenKey {
	return seenKey{aor: bucketHash(w.AOR), key: bindingKeyHash(w.F.Instance, w.F.RegID, w.F.Contact)}
}

// noteHeard records a message from peer and detects a return from a long
// absence, of the peer or of this node.
func (r *Replicator) noteHeard(peer cluster.NodeID) {
	nowT := r.cfg.Now()
	now := nowT.UnixNano()
	ttl := int64(r.store.cfg.TombstoneTTL)
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, known := r.heard[peer]
	r.heard[peer] = now
	lastAny := r.lastHeard
	r.lastHeard = now
	if known && now-prev > ttl {
		r.awayFrom[peer] = awayMark{before: hlcAt(prev), until: now + ttl}
		r.repair[peer] = true
		r.log.Warn("usrloc: peer back after longer than TombstoneTTL: its older versions are not taken", "peer", peer, "silent", time.Duration(now-prev))
	}
	if lastAny != 0 && now-lastAny > ttl && r.isSynced.Load() && r.join == nil {
		r.stats.resyncs.Add(1)
		r.join = &joinState{started: nowT, pruneBefore: hlcAt(lastAny), seen: map[seenKey]struct{}{}, donor: peer, everPeer: true}
		r.log.Warn("usrloc: cut off from every peer for longer than TombstoneTTL: full resync", "silent", time.Duration(now-lastAny), "donor", peer)
	}
}

// hlcAt is the smallest HLC of a wall-clock instant.
func hlcAt(unixNano int64) HLC { return HLC(uint64(unixNano/1e6) << hlcLogicalBits) }

// prune drops local versions older than before that are not in seen,
// without tombstones: they are the ones the rest of the cluster deleted
// while this node was away. It returns how many it dropped.
func (s *Store) prune(before HLC, seen map[seenKey]struct{}) int {
	n := 0
	for b := range s.shards {
		sh := &s.shards[b]
		sh.mu.Lock()
		var evs []Event
		var victims []string
		sh.aors.all(func(sl *slot) bool {
			stale := sl.head.hlc < before
			for _, r := range sl.tail() {
				stale = stale || r.hlc < before
			}
			if stale {
				victims = append(victims, string(sl.appendKey(nil)))
			}
			return true
		})
		for _, aor := range victims {
			ah := bucketHash(aor)
			var buf [entryBuf]rec
			ent, recs := entry(sh, ah, aor, &buf)
			ent.dur = aor // a copy already
			for i := 0; i < len(recs); {
				r := &recs[i]
				if _, ok := seen[seenKey{ah, r.keyHash()}]; ok || r.hlc >= before {
					i++
					continue
				}
				recs, evs = s.removeAt(sh, &ent, recs, i, Removed, evs)
				n++
			}
			sh.store(&ent, recs)
		}
		s.emit(evs)
		sh.mu.Unlock()
	}
	return n
}

// holds reports whether this store has any version of w's binding.
func (s *Store) holds(w *wireRec) bool {
	sh, h := s.shardOf(w.AOR)
	kh := bindingKeyHash(w.F.Instance, w.F.RegID, w.F.Contact)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sl := sh.aors.find(h, w.AOR)
	if sl == nil {
		return false
	}
	if sl.head.keyHash() == kh {
		return true
	}
	tail := sl.tail()
	for i := range tail {
		if tail[i].keyHash() == kh {
			return true
		}
	}
	return false
}
