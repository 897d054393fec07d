package dialog

import (
	"context"
	"time"

	"github.com/sipha/sipha/cluster"
)

// A resync pulls a peer's whole table: the peer answers a request with
// chunks of records and an end message carrying how many it sent. The
// puller counts the records of that session and accepts it only if the
// count matches and no sequence gap from that peer fell after the session's
// first chunk; else it asks again. Live updates keep flowing meanwhile and need no buffering:
// records merge in any order.

// A donor keeps at most syncWindow chunks of about syncChunkBytes
// unacknowledged (about 130 KB), so a table of any size goes through a peer
// queue of a few hundred KB with room left for live traffic. A window that
// filled the queue made the donor's own heartbeat overflow it: the puller
// saw the gap, abandoned the session and asked again, forever.
const (
	syncChunkBytes = 32 << 10
	syncWindow     = 4
)

type peerSync struct {
	session uint64 // outstanding request; 0 = none
	got     uint64 // records received in session
	chunks  uint64 // chunks received in session
	again   bool   // a gap was seen during the session: one more pass after it
	asked   time.Time
}

// donor is one table being sent to a peer.
type donor struct {
	session uint64
	acks    chan uint64 // chunks acknowledged, latest value
	quit    chan struct{}
}

type syncState struct {
	next    uint64
	donors  map[cluster.NodeID]*donor
	peers   map[cluster.NodeID]*peerSync
	pending map[cluster.NodeID]bool // peers the start-up sync waits for
	started time.Time
	done    chan struct{}
}

func (s *syncState) init() {
	s.peers = make(map[cluster.NodeID]*peerSync)
	s.donors = make(map[cluster.NodeID]*donor)
	s.pending = make(map[cluster.NodeID]bool)
	s.done = make(chan struct{})
}

// startSync asks every known peer for its table.
func (t *Tracker) startSync() {
	t.mu.Lock()
	t.sync.started = t.cfg.Now()
	for _, m := range t.tr.Members() {
		t.sync.pending[m.ID] = true
	}
	t.checkSyncedLocked()
	t.mu.Unlock()
	for _, m := range t.tr.Members() {
		t.resync(m.ID, false)
	}
}

// Synced is closed once the start-up sync is complete: every peer known at
// start either sent its whole table (verified) or is down. Counts read
// before it may miss dialogs.
func (t *Tracker) Synced() <-chan struct{} { return t.sync.done }

// WaitSynced waits for Synced or the context's end.
func (t *Tracker) WaitSynced(ctx context.Context) error {
	select {
	case <-t.sync.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Tracker) checkSyncedLocked() {
	if len(t.sync.pending) == 0 {
		select {
		case <-t.sync.done:
		default:
			close(t.sync.done)
		}
	}
}

// resync asks peer for its table, abandoning an outstanding request.
func (t *Tracker) resync(peer cluster.NodeID, repair bool) {
	t.mu.Lock()
	ps := t.sync.peers[peer]
	if ps == nil {
		ps = &peerSync{}
		t.sync.peers[peer] = ps
	}
	t.sync.next++
	ps.session, ps.got, ps.chunks, ps.again, ps.asked = t.sync.next, 0, 0, false, t.cfg.Now()
	session := ps.session
	t.mu.Unlock()
	if repair {
		t.stats.resyncs.Add(1)
	}
	if t.tr.Send(peer, cluster.ChannelDialog, appendSyncReq(nil, session)) != nil {
		t.stats.sendErrors.Add(1)
	}
}

// gap repairs a loss in peer's sequence, seen on a message about to be
// handled. With no resync in flight it asks for one. While one is in
// flight it never abandons it (that restarted a big table on every lost
// message and, with steady loss, never finished): before the session's
// first chunk, the loss is of a change the session carries (serveSync);
// after it, one more pass follows this one.
func (t *Tracker) gap(peer cluster.NodeID) {
	t.mu.Lock()
	ps := t.sync.peers[peer]
	inFlight := ps != nil && ps.session != 0
	if inFlight && ps.chunks > 0 {
		ps.again = true
	}
	t.mu.Unlock()
	if !inFlight {
		t.resync(peer, true)
	}
}

func (t *Tracker) syncChunk(peer cluster.NodeID, session uint64, n int) {
	t.mu.Lock()
	ps := t.sync.peers[peer]
	if ps == nil || ps.session != session || session == 0 {
		t.mu.Unlock()
		return
	}
	ps.got += uint64(n)
	ps.chunks++
	ps.asked = t.cfg.Now() // SyncRetry is a silence timeout: big tables take longer
	chunks := ps.chunks
	t.mu.Unlock()
	if t.tr.Send(peer, cluster.ChannelDialog, appendSyncAck(nil, session, chunks)) != nil {
		t.stats.sendErrors.Add(1)
	}
}

// syncAcked passes a puller's acknowledgement to the donor sending to it.
func (t *Tracker) syncAcked(peer cluster.NodeID, session, chunks uint64) {
	t.mu.Lock()
	d := t.sync.donors[peer]
	t.mu.Unlock()
	if d == nil || d.session != session {
		return
	}
	select { // keep only the latest count
	case <-d.acks:
	default:
	}
	d.acks <- chunks
}

func (t *Tracker) syncEnd(peer cluster.NodeID, session, total uint64) {
	t.mu.Lock()
	ps := t.sync.peers[peer]
	if ps == nil || ps.session != session {
		t.mu.Unlock()
		return
	}
	ok := ps.got == total && !ps.again
	if ok {
		ps.session = 0
		delete(t.sync.pending, peer)
		t.checkSyncedLocked()
	}
	t.mu.Unlock()
	if ok {
		t.stats.syncsDone.Add(1)
		t.stats.syncRecords.Add(total)
		return
	}
	t.resync(peer, true)
}

// retrySync re-asks peers whose resync is overdue and gives up waiting, at
// start-up, for peers that are down.
func (t *Tracker) retrySync(now time.Time) {
	state := make(map[cluster.NodeID]cluster.State)
	for _, m := range t.tr.Members() {
		state[m.ID] = m.State
	}
	var again []cluster.NodeID
	t.mu.Lock()
	for id := range t.sync.pending {
		st, known := state[id]
		if !known || st == cluster.StateDown || st == cluster.StateLeft ||
			st == cluster.StateUnknown && now.Sub(t.sync.started) > t.cfg.SyncRetry {
			delete(t.sync.pending, id)
		}
	}
	t.checkSyncedLocked()
	for id, ps := range t.sync.peers {
		if ps.session != 0 && now.Sub(ps.asked) > t.cfg.SyncRetry && state[id].Alive() {
			again = append(again, id)
		}
	}
	t.mu.Unlock()
	for _, id := range again {
		t.resync(id, true)
	}
}

// onMember resyncs with a peer that comes (back) up: it may have missed our
// updates and we its.
func (t *Tracker) onMember(ev cluster.MemberEvent) {
	if ev.State == cluster.StateUp && ev.Old != cluster.StateSuspect {
		t.resync(ev.ID, ev.Old != cluster.StateUnknown)
	}
}

// serveSync starts sending this node's table to a peer: chunks, at most
// syncWindow unacknowledged, then the record count. A new request from the
// same peer replaces the one being served.
//
// The list of records is taken and the first chunk (or, for an empty table,
// the end) sent under one hold of the lock, after which the rest is encoded
// a chunk at a time, so a big table never stalls call processing for the
// whole encode. That first send is what lets the puller tell gaps apart:
// an update lost before it was a change made before the list was taken, so
// the session carries it (see gap). A record that changes later is sent in
// its newer state, which merging accepts in any order.
func (t *Tracker) serveSync(to cluster.NodeID, session uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if old := t.sync.donors[to]; old != nil {
		close(old.quit)
		delete(t.sync.donors, to)
	}
	rs := make([]*record, 0, len(t.dialogs))
	for _, r := range t.dialogs {
		rs = append(rs, r)
	}
	total := uint64(len(rs))
	if total == 0 {
		t.send(to, appendSyncEnd(nil, session, 0))
		return
	}
	c, n := encodeChunk(session, rs)
	if !t.send(to, c) {
		return // the puller sees the gap or times out and asks again
	}
	if n == len(rs) {
		t.send(to, appendSyncEnd(nil, session, total))
		return
	}
	d := &donor{session: session, acks: make(chan uint64, 1), quit: make(chan struct{})}
	t.sync.donors[to] = d
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer func() {
			t.mu.Lock()
			if t.sync.donors[to] == d {
				delete(t.sync.donors, to)
			}
			t.mu.Unlock()
		}()
		t.sendTable(to, d, rs[n:], total)
	}()
}

// send sends one message to a peer and counts a refusal.
func (t *Tracker) send(to cluster.NodeID, msg []byte) bool {
	if err := t.tr.Send(to, cluster.ChannelDialog, msg); err != nil {
		t.stats.sendErrors.Add(1)
		return false
	}
	return true
}

// sendTable sends the rest of a table after its first chunk.
func (t *Tracker) sendTable(to cluster.NodeID, d *donor, rs []*record, total uint64) {
	var acked uint64
	timeout := time.NewTimer(t.cfg.SyncRetry)
	defer timeout.Stop()
	for i := uint64(1); len(rs) > 0; i++ {
		for i >= acked+syncWindow {
			select {
			case acked = <-d.acks:
				timeout.Reset(t.cfg.SyncRetry)
			case <-timeout.C:
				return // the puller asks again
			case <-d.quit:
				return
			case <-t.quit:
				return
			}
		}
		t.mu.Lock()
		c, n := encodeChunk(d.session, rs)
		t.mu.Unlock()
		rs = rs[n:]
		if !t.send(to, c) {
			return // the puller sees the gap or times out and asks again
		}
	}
	t.send(to, appendSyncEnd(nil, d.session, total))
}

// encodeChunk encodes the first records of rs as one sync chunk of about
// syncChunkBytes and says how many it took. The caller holds the lock
// (records change under it).
func encodeChunk(session uint64, rs []*record) ([]byte, int) {
	var body []byte
	n := 0
	for n < len(rs) && n < maxChunk && len(body) < syncChunkBytes {
		body = appendRecord(body, rs[n])
		n++
	}
	return append(appendSyncChunkHead(nil, session, uint64(n)), body...), n
}

// encodeChunks encodes all of rs as sync chunks. The caller holds the lock.
func encodeChunks(session uint64, rs []*record) [][]byte {
	var chunks [][]byte
	for len(rs) > 0 {
		c, n := encodeChunk(session, rs)
		chunks = append(chunks, c)
		rs = rs[n:]
	}
	return chunks
}
