package usrloc

import (
	"time"

	"github.com/sipha/sipha/cluster"
)

// joinState tracks a node's initial sync: stream every bucket from a donor
// (resuming with another donor where a dead one stopped), then verify
// against the donor before reporting synced.
type joinState struct {
	started time.Time
	donor   cluster.NodeID
	base    int // buckets before the current pull's first
	pos     int // buckets [0, pos) received
	pull    *pull
	// verifying: a digest was sent to donor at verifySent and its reply
	// (verifyID) is awaited.
	verifying  bool
	verifyID   uint64
	verifySent time.Time
	rounds     int
	bad        map[cluster.NodeID]int
	everPeer   bool
	// refused: peers that answered they are not synced either.
	refused map[cluster.NodeID]bool
	// pruneBefore, for a resync after a long absence: versions older than
	// this that the donor did not send (seen) are dropped.
	pruneBefore HLC
	seen        map[seenKey]struct{}
}

func (j *joinState) refusedBy(peer cluster.NodeID) {
	if j.refused == nil {
		j.refused = map[cluster.NodeID]bool{}
	}
	j.refused[peer] = true
}

func (j *joinState) failed(peer cluster.NodeID) {
	if j.bad == nil {
		j.bad = map[cluster.NodeID]int{}
	}
	j.bad[peer]++
	if j.donor == peer {
		j.donor = ""
	}
}

// maxVerifyRounds bounds the verification rounds against one donor before
// the joiner streams everything again from another.
const maxVerifyRounds = 20

// driveJoin advances the join; called from run every tick.
func (r *Replicator) driveJoin(now time.Time) {
	peers := r.alivePeers()
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.join
	if j == nil || j.pull != nil {
		return
	}
	if !r.isSynced.Load() && len(peers) > 0 && len(j.refused) >= len(peers) && allIn(peers, j.refused) &&
		r.cfg.BootstrapWait >= 0 && now.Sub(j.started) >= r.cfg.BootstrapWait {
		// Every reachable peer is starting too (a whole-cluster restart,
		// each node with what its persistence loaded): none can be the
		// reference, so all start with what they have and anti-entropy
		// merges them.
		r.join = nil
		r.markSynced("every reachable peer is starting too")
		return
	}
	if len(peers) == 0 {
		if !j.everPeer && r.cfg.BootstrapWait >= 0 && now.Sub(j.started) >= r.cfg.BootstrapWait {
			r.join = nil
			r.markSynced("no peer reachable: first node of the cluster")
		}
		return
	}
	j.everPeer = true
	if j.verifying {
		if now.Sub(j.verifySent) <= r.cfg.SyncTimeout {
			return
		}
		j.verifying = false
		j.failed(j.donor)
	}
	if j.donor == "" || !contains(peers, j.donor) {
		j.donor = pickDonor(peers, j.bad)
	}
	if j.pos < nBuckets {
		bs := make([]int, 0, nBuckets-j.pos)
		for b := j.pos; b < nBuckets; b++ {
			bs = append(bs, b)
		}
		j.base = j.pos
		j.pull = r.startPullLocked(j.donor, bs, pullJoin)
		r.log.Info("usrloc: syncing", "donor", j.donor, "from bucket", j.pos)
		return
	}
	r.startVerifyLocked(now)
}

// startVerifyLocked sends this node's digest to the donor; the donor's
// reply is compared in digest.
func (r *Replicator) startVerifyLocked(now time.Time) {
	j := r.join
	j.rounds++
	if j.rounds > maxVerifyRounds {
		r.log.Warn("usrloc: sync does not verify against donor, streaming again from another", "donor", j.donor)
		j.failed(j.donor)
		j.pos, j.rounds = 0, 0
		return
	}
	r.nextID++
	j.verifyID = r.nextID
	j.verifying = true
	j.verifySent = now
	r.stats.verifyRounds.Add(1)
	var d [nBuckets]bucketSum
	r.store.digests(&d)
	r.send(j.donor, &message{typ: msgDigest, id: j.verifyID, digests: d[:]})
}

// pullDoneLocked handles a completed pull.
func (r *Replicator) pullDoneLocked(p *pull) {
	j := r.join
	switch p.purpose {
	case pullJoin:
		if j != nil && j.pull == p {
			j.pull = nil
			j.pos = nBuckets
			if j.pruneBefore != 0 && j.seen != nil {
				n := r.store.prune(j.pruneBefore, j.seen)
				r.stats.pruned.Add(uint64(n))
				r.log.Info("usrloc: dropped bindings deleted while away", "count", n)
				j.seen = nil
			}
			r.startVerifyLocked(r.cfg.Now())
		}
	case pullVerify:
		if j == nil || j.pull != p {
			return
		}
		j.pull = nil
		if p.notDominated == 0 {
			// Every bucket either matched the donor's count and checksum,
			// or now holds each of the donor's versions or a newer one.
			r.join = nil
			r.markSynced("verified against " + string(p.peer))
			return
		}
		r.stats.verifyBad.Add(uint64(p.notDominated))
		r.startVerifyLocked(r.cfg.Now())
	}
}

// digest compares a peer's digests with this node's. A round's opener
// gets the reply so it can pull what it lacks too; both sides pull the
// buckets that differ, so one round repairs both directions.
func (r *Replicator) digest(from cluster.NodeID, m *message) {
	if !m.reply && !r.isSynced.Load() {
		// A joining node is no reference for anyone (it would refuse
		// the pull anyway), and its own join pulls every bucket.
		return
	}
	var mine [nBuckets]bucketSum
	r.store.digests(&mine)
	var diff []int
	for b := range mine {
		if mine[b] != m.digests[b] {
			diff = append(diff, b)
		}
	}
	if !m.reply {
		r.send(from, &message{typ: msgDigest, id: m.id, reply: true, digests: mine[:]})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.join
	if m.reply && j != nil && j.verifying && m.id == j.verifyID && from == j.donor {
		j.verifying = false
		if len(diff) == 0 {
			r.join = nil
			r.markSynced("verified against " + string(from) + ": every bucket's count and checksum match")
			return
		}
		r.stats.verifyBad.Add(uint64(len(diff)))
		j.pull = r.startPullLocked(from, diff, pullVerify)
		return
	}
	if len(diff) == 0 || j != nil {
		// While a join (or a full resync) runs, a repair would stream
		// again the buckets the join is pulling; the join's verification
		// against its donor catches whatever else differs.
		return
	}
	for _, p := range r.pulls {
		if p.peer == from && p.purpose == pullRepair {
			return // one repair per peer at a time
		}
	}
	r.startPullLocked(from, diff, pullRepair)
}

// requestRepair schedules an anti-entropy round with peer.
func (r *Replicator) requestRepair(peer cluster.NodeID) {
	r.mu.Lock()
	r.repair[peer] = true
	r.mu.Unlock()
}

// runRepairs opens the scheduled rounds.
func (r *Replicator) runRepairs() {
	r.mu.Lock()
	var peers []cluster.NodeID
	for p := range r.repair {
		busy := false
		for _, pl := range r.pulls {
			if pl.peer == p {
				busy = true
			}
		}
		if !busy {
			peers = append(peers, p)
			delete(r.repair, p)
		}
	}
	r.mu.Unlock()
	for _, p := range peers {
		r.stats.repairs.Add(1)
		r.openRound(p)
	}
}

// antiEntropyRound compares digests with the next peer in turn.
func (r *Replicator) antiEntropyRound() {
	peers := r.alivePeers()
	if len(peers) == 0 {
		return
	}
	r.mu.Lock()
	p := peers[r.aeNext%len(peers)]
	r.aeNext++
	r.mu.Unlock()
	r.openRound(p)
}

func (r *Replicator) openRound(peer cluster.NodeID) {
	var d [nBuckets]bucketSum
	r.store.digests(&d)
	r.mu.Lock()
	r.nextID++
	id := r.nextID
	r.mu.Unlock()
	r.send(peer, &message{typ: msgDigest, id: id, digests: d[:]})
}

func allIn(ids []cluster.NodeID, set map[cluster.NodeID]bool) bool {
	for _, id := range ids {
		if !set[id] {
			return false
		}
	}
	return true
}

func contains(ids []cluster.NodeID, id cluster.NodeID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// pickDonor prefers the live peer that failed least often, then the
// lowest ID.
func pickDonor(peers []cluster.NodeID, bad map[cluster.NodeID]int) cluster.NodeID {
	best := peers[0]
	for _, p := range peers[1:] {
		if bad[p] < bad[best] || (bad[p] == bad[best] && p < best) {
			best = p
		}
	}
	return best
}
