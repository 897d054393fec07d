package dialog

import (
	"errors"

	"github.com/sipha/sipha/cluster"
)

// broadcast sends one update to every peer. A refused send is counted; the
// peer sees the gap in the sequence numbers and asks for a resync.
func (t *Tracker) broadcast(payload []byte) {
	if t.tr == nil {
		return
	}
	if err := t.tr.Broadcast(cluster.ChannelDialog, payload); err != nil && !errors.Is(err, cluster.ErrClosed) {
		t.stats.sendErrors.Add(1)
	}
}

// handle is the ChannelDialog handler. Calls for one peer are sequential.
func (t *Tracker) handle(m cluster.Message) {
	t.stats.received.Add(1)
	if m.Missed > 0 || m.Restarted {
		// Something from this peer was lost (or it restarted): pull its
		// whole table. Merging is idempotent, so what we already have
		// costs only bandwidth.
		t.gap(m.From)
	}
	msg, err := decode(m.Payload)
	if err != nil {
		t.stats.malformed.Add(1)
		t.log.Warn("dialog: dropped malformed replication message", "from", m.From, "err", err)
		return
	}
	switch msg.typ {
	case msgRecord:
		t.merge(msg.records)
	case msgTakeover:
		t.mu.Lock()
		if msg.epoch > t.maxEpoch[msg.origin] {
			t.maxEpoch[msg.origin] = msg.epoch
		}
		t.mu.Unlock()
	case msgSyncReq:
		t.serveSync(m.From, msg.session)
	case msgSyncChunk:
		t.merge(msg.records)
		t.syncChunk(m.From, msg.session, len(msg.records))
	case msgSyncAck:
		t.syncAcked(m.From, msg.session, msg.total)
	case msgSyncEnd:
		t.syncEnd(m.From, msg.session, msg.total)
	}
}

// merge folds replicated records into the table.
func (t *Tracker) merge(rs []*record) {
	var todo []*effects
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	oldest := t.cfg.Now().Add(-t.cfg.TombstoneTTL).UnixNano()
	for _, in := range rs {
		cur := t.dialogs[in.id]
		fresh := cur == nil
		if fresh {
			if in.state == Terminated && (t.cfg.TombstoneTTL == 0 || in.ended < oldest) {
				continue // ended long ago: its tombstone is gone here, keep it gone
			}
			cur = &record{id: in.id, timerIdx: -1}
		}
		var buf [4]ProfileKey
		before, old := cur.active(buf[:0]), cur.state
		changed, fenced := cur.merge(in)
		if fenced {
			t.stats.fenced.Add(1)
		}
		if !changed && !fresh {
			continue
		}
		if fresh {
			if cur.state == 0 {
				continue
			}
			t.dialogs[in.id] = cur
			t.stats.live.Add(1)
		}
		if e := t.after(cur, before, old, false); e != nil {
			todo = append(todo, e)
		}
	}
	t.mu.Unlock()
	for _, e := range todo {
		t.run(e)
	}
}
