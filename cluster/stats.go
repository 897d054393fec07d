package cluster

import "sync/atomic"

// Stats is a snapshot of a transport's counters, for metrics.
type Stats struct {
	MessagesSent     uint64 // accepted into a peer's queue
	MessagesReceived uint64 // handed to a handler
	BytesSent        uint64
	BytesReceived    uint64
	// DroppedQueueFull counts messages refused because a peer's queue was
	// full (the sender got ErrQueueFull, the receiver sees a gap).
	DroppedQueueFull uint64
	// DroppedPeerDown counts messages dropped because their peer was down
	// or gone: refused by Send, skipped by Broadcast, or discarded from the
	// queue when the peer was declared down.
	DroppedPeerDown uint64
	// DroppedMalformed counts frames skipped because they did not decode.
	DroppedMalformed uint64
	// DroppedUnknownChannel counts messages for a channel with no handler.
	DroppedUnknownChannel uint64
	// DroppedDuplicate counts frames whose sequence number was not new.
	DroppedDuplicate uint64
	// ClosedOversize counts connections closed for a frame over the cap.
	ClosedOversize    uint64
	HandshakeFailures uint64
	AuthFailures      uint64
	DialFailures      uint64
	Peers             []PeerStats
}

// PeerStats are one peer's counters.
type PeerStats struct {
	ID          NodeID
	State       State
	Sent        uint64 // messages queued for the peer
	Dropped     uint64 // messages dropped: full queue, or the peer was down
	Received    uint64 // messages delivered from the peer
	Missed      uint64 // gaps seen in the peer's sequence numbers
	QueuedBytes int
}

type counters struct {
	messagesReceived, bytesSent, bytesReceived                atomic.Uint64
	queueFull, peerDown, malformed, unknownChannel, duplicate atomic.Uint64
	oversize, handshakeFailures, authFailures, dialFailures   atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (t *TCP) Stats() Stats {
	s := Stats{
		BytesSent:             t.stats.bytesSent.Load(),
		BytesReceived:         t.stats.bytesReceived.Load(),
		DroppedQueueFull:      t.stats.queueFull.Load(),
		DroppedPeerDown:       t.stats.peerDown.Load(),
		DroppedMalformed:      t.stats.malformed.Load(),
		DroppedUnknownChannel: t.stats.unknownChannel.Load(),
		DroppedDuplicate:      t.stats.duplicate.Load(),
		ClosedOversize:        t.stats.oversize.Load(),
		HandshakeFailures:     t.stats.handshakeFailures.Load(),
		AuthFailures:          t.stats.authFailures.Load(),
		DialFailures:          t.stats.dialFailures.Load(),
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, p := range t.peers {
		p.mu.Lock()
		ps := PeerStats{ID: p.id, State: p.state, QueuedBytes: len(p.pending), Sent: p.sent}
		p.mu.Unlock()
		p.rmu.Lock()
		ps.Received = p.received
		p.rmu.Unlock()
		ps.Dropped, ps.Missed = p.dropped.Load(), p.missed.Load()
		s.MessagesSent += ps.Sent
		s.MessagesReceived += ps.Received
		s.Peers = append(s.Peers, ps)
	}
	return s
}
