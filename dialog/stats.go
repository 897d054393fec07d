package dialog

import "sync/atomic"

type counters struct {
	live        atomic.Int64
	hooks       atomic.Uint64
	timeouts    atomic.Uint64
	takeovers   atomic.Uint64
	underflows  atomic.Uint64
	fenced      atomic.Uint64
	received    atomic.Uint64
	malformed   atomic.Uint64
	sendErrors  atomic.Uint64
	resyncs     atomic.Uint64
	syncsDone   atomic.Uint64
	syncRecords atomic.Uint64
}

// Stats is a snapshot of a tracker's counters.
type Stats struct {
	// Live is the number of dialogs not yet ended that this node holds.
	Live int
	// Tombstones is the number of ended dialogs kept (Config.TombstoneTTL).
	Tombstones int
	// HooksFired counts terminate hooks fired here.
	HooksFired uint64
	// Timeouts counts dialogs this node ended by a timer, as their owner.
	Timeouts uint64
	// Takeovers counts node resources acquired.
	Takeovers uint64
	// Underflows counts attempted decrements of a zero profile count. It
	// must stay 0: any other value is a bug.
	Underflows uint64
	// Fenced counts timer terminations ignored because a newer owner of
	// the dialog's node resource was known.
	Fenced uint64
	// Received and Malformed count replication messages.
	Received, Malformed uint64
	// SendErrors counts updates a peer's queue refused (the peer repairs
	// by resync when it sees the gap).
	SendErrors uint64
	// Resyncs counts resyncs requested; SyncsDone those verified complete;
	// SyncRecords the records they carried.
	Resyncs, SyncsDone, SyncRecords uint64
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	tombs := len(t.tombs)
	t.mu.Unlock()
	c := &t.stats
	return Stats{Live: int(c.live.Load()), Tombstones: tombs, HooksFired: c.hooks.Load(),
		Timeouts: c.timeouts.Load(), Takeovers: c.takeovers.Load(), Underflows: c.underflows.Load(),
		Fenced: c.fenced.Load(), Received: c.received.Load(), Malformed: c.malformed.Load(),
		SendErrors: c.sendErrors.Load(), Resyncs: c.resyncs.Load(), SyncsDone: c.syncsDone.Load(),
		SyncRecords: c.syncRecords.Load()}
}
