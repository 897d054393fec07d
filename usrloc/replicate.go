package usrloc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/cluster"
)

// ReplicatorConfig configures a Replicator. The zero value of every field
// means its default.
type ReplicatorConfig struct {
	// BatchInterval is how long a local change may wait to be batched with
	// others before it is broadcast. Zero (the default) waits for nothing:
	// the writer that finds no broadcast in progress sends its change at
	// once, and the changes made meanwhile go out together in the next
	// batch (group commit), so batches grow with the load instead of every
	// change paying a timer's wait or a hop to another goroutine.
	BatchInterval time.Duration
	// BatchBytes sends a batch at once when it reaches this size; default
	// 32 KiB.
	BatchBytes int
	// ChunkBytes is the target size of a sync or repair chunk; default
	// 256 KiB. It must stay below the transport's MaxMessageSize.
	ChunkBytes int
	// Window is how many chunks a donor sends ahead of the joiner's
	// acknowledgements; default 4. Window × ChunkBytes must fit the
	// transport's per-peer queue (8 MiB by default).
	Window int
	// SyncTimeout without progress from a donor makes the joiner resume
	// with another; default 5 s.
	SyncTimeout time.Duration
	// AntiEntropyInterval is how often digests are compared with one peer
	// (round robin); default 10 s. Negative disables the periodic rounds
	// (gap repairs still run).
	AntiEntropyInterval time.Duration
	// NoJoin starts as synced without pulling a snapshot: for the first
	// node of a new cluster.
	NoJoin bool
	// StateAsOf is how current the store's contents are when they were
	// loaded from a file (Persister.LastWritten). When it is older than
	// the store's TombstoneTTL the join drops the loaded bindings older
	// than it that the donor does not have: the cluster deleted them and
	// has forgotten the tombstones.
	StateAsOf time.Time
	// BootstrapWait: when no peer is reachable for this long after start,
	// the node concludes it is the first one and reports synced with what
	// it has. Default 3 s; negative waits for a peer for ever.
	BootstrapWait time.Duration
	// Now is the clock for timeouts; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c ReplicatorConfig) withDefaults() ReplicatorConfig {
	if c.BatchBytes == 0 {
		c.BatchBytes = 32 << 10
	}
	if c.ChunkBytes == 0 {
		c.ChunkBytes = 256 << 10
	}
	if c.Window == 0 {
		c.Window = 4
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 5 * time.Second
	}
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = 10 * time.Second
	}
	if c.BootstrapWait == 0 {
		c.BootstrapWait = 3 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration after defaults are applied.
func (c ReplicatorConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.BatchInterval < 0 || c.BatchBytes < 1024:
		return errors.New("usrloc: need BatchInterval ≥ 0 and BatchBytes ≥ 1 KiB")
	case c.ChunkBytes < 4096 || c.ChunkBytes > 2<<20:
		return errors.New("usrloc: ChunkBytes must be in 4 KiB..2 MiB")
	case c.Window < 1 || c.Window*c.ChunkBytes > 6<<20:
		return errors.New("usrloc: Window × ChunkBytes must be in 1 chunk..6 MiB (the peer queue is 8 MiB)")
	case c.SyncTimeout < 10*time.Millisecond:
		return errors.New("usrloc: SyncTimeout below 10ms")
	}
	return nil
}

// Replicator keeps a Store equal on every node (full sharing) over a
// cluster.Transport channel. See the package documentation for the
// protocol.
type Replicator struct {
	store *Store
	tr    cluster.Transport
	cfg   ReplicatorConfig
	log   *slog.Logger
	self  cluster.NodeID

	bmu     sync.Mutex
	batch   encoder // records of the pending batch
	batchN  int
	out     []byte // the message being broadcast; only the sender uses it
	sending bool   // a goroutine is in sendBatchesLocked

	mu       sync.Mutex
	pulls    map[uint64]*pull          // sessions pulling from peers, by ID
	serving  map[servingKey]*serveSess // sessions streaming to peers
	repair   map[cluster.NodeID]bool   // peers owed an anti-entropy round
	nextID   uint64
	join     *joinState
	aeNext   int
	synced   chan struct{}
	isSynced atomic.Bool
	// heard is when each peer was last heard from, and lastHeard when any
	// was; awayFrom holds, for a peer that was silent longer than
	// TombstoneTTL, the HLC of its last message before the silence.
	heard     map[cluster.NodeID]int64
	lastHeard int64
	awayFrom  map[cluster.NodeID]awayMark

	stats replStats
	msgs  sync.Pool // of *message, see putMessage

	kick      chan struct{}
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns a replicator for store over tr and starts it: it installs
// itself as tr's handler of cluster.ChannelUsrloc and as the store's
// change hook, so create it before the store takes writes.
func NewReplicator(store *Store, tr cluster.Transport, cfg ReplicatorConfig) (*Replicator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if tr.LocalID() != store.Node() {
		return nil, fmt.Errorf("usrloc: store node %q differs from transport node %q", store.Node(), tr.LocalID())
	}
	r := &Replicator{store: store, tr: tr, cfg: cfg, log: cfg.Logger, self: tr.LocalID(),
		pulls: map[uint64]*pull{}, serving: map[servingKey]*serveSess{}, repair: map[cluster.NodeID]bool{},
		heard: map[cluster.NodeID]int64{}, awayFrom: map[cluster.NodeID]awayMark{},
		synced: make(chan struct{}), kick: make(chan struct{}, 1), quit: make(chan struct{})}
	r.nextID = uint64(cfg.Now().UnixNano()) // distinct across restarts of this node
	store.setOnLocal(r.local)
	tr.Handle(cluster.ChannelUsrloc, cluster.HandlerFunc(r.handle))
	if cfg.NoJoin {
		r.markSynced("configured")
	} else {
		r.join = &joinState{started: cfg.Now()}
		if !cfg.StateAsOf.IsZero() && cfg.Now().Sub(cfg.StateAsOf) > store.cfg.TombstoneTTL {
			r.join.pruneBefore = hlcAt(cfg.StateAsOf.UnixNano())
			r.join.seen = map[seenKey]struct{}{}
		}
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// Close stops replication: the handler is removed, pending batches are
// dropped (peers repair by anti-entropy) and every goroutine ends. It is
// idempotent.
func (r *Replicator) Close() error {
	r.closeOnce.Do(func() {
		r.store.setOnLocal(nil)
		r.tr.Handle(cluster.ChannelUsrloc, nil)
		close(r.quit)
		r.mu.Lock()
		for _, s := range r.serving {
			s.cancel()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return nil
}

// Synced is closed once this node holds a verified copy of the cluster's
// bindings (or was configured or found to be the first node).
func (r *Replicator) Synced() <-chan struct{} { return r.synced }

func (r *Replicator) markSynced(why string) {
	if r.isSynced.CompareAndSwap(false, true) {
		r.log.Info("usrloc: synced", "node", r.self, "how", why, "bindings", r.store.Len())
		close(r.synced)
	}
}

// local is the store's hook: it adds a local change to the pending batch.
func (r *Replicator) local(aor string, rc rec) {
	var w wireRec
	r.store.toWire(aor, &rc, r.store.now().UnixNano(), &w)
	r.bmu.Lock()
	r.batch.rec(&w)
	r.batchN++
	if r.cfg.BatchInterval == 0 || len(r.batch.b) >= r.cfg.BatchBytes {
		r.sendBatchesLocked()
		r.bmu.Unlock()
		return
	}
	r.bmu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// sendBatchesLocked broadcasts the pending batch, and the ones that fill
// while it does, until none is left; if another goroutine is already at
// it, that one sends this batch too. One sender at a time keeps batches in
// order. r.bmu must be held; it is released during each broadcast (which
// never blocks) so writers keep adding to the next batch.
func (r *Replicator) sendBatchesLocked() {
	if r.sending {
		return
	}
	r.sending = true
	for r.batchN > 0 {
		e := encoder{b: r.out[:0]}
		e.header(msgUpdates)
		e.uvarint(uint64(r.batchN))
		e.b = append(e.b, r.batch.b...)
		r.out = e.b
		n := r.batchN
		r.batch.b = r.batch.b[:0]
		r.batchN = 0
		r.bmu.Unlock()
		r.stats.batchesSent.Add(1)
		r.stats.updatesSent.Add(uint64(n))
		if err := r.tr.Broadcast(cluster.ChannelUsrloc, r.out); err != nil {
			// The peers that missed it see a gap and ask for a repair.
			r.stats.sendErrors.Add(1)
			r.log.Debug("usrloc: broadcast", "err", err)
		}
		r.bmu.Lock()
	}
	r.sending = false
}

func (r *Replicator) flush() {
	r.bmu.Lock()
	r.sendBatchesLocked()
	r.bmu.Unlock()
}

// handle receives a message of the usrloc channel.
func (r *Replicator) handle(m cluster.Message) {
	r.noteHeard(m.From)
	if m.Missed > 0 || m.Restarted {
		r.stats.gaps.Add(1)
		r.log.Debug("usrloc: gap from peer, repairing", "peer", m.From, "missed", m.Missed, "restarted", m.Restarted)
		r.gapFrom(m.From, m.Restarted)
		r.requestRepair(m.From)
	}
	msg, _ := r.msgs.Get().(*message)
	if msg == nil {
		msg = new(message)
	}
	defer r.putMessage(msg)
	if err := decode(m.Payload, msg); err != nil {
		r.stats.malformed.Add(1)
		r.log.Warn("usrloc: malformed message dropped", "peer", m.From, "err", err)
		return
	}
	switch msg.typ {
	case msgUpdates:
		r.stats.updatesRecv.Add(uint64(len(msg.recs)))
		r.mergeAll(msg.recs)
	case msgSyncReq:
		r.serve(m.From, msg.id, msg.buckets)
	case msgSyncAck:
		r.ack(m.From, msg.id, msg.seq)
	case msgSyncChunk:
		r.chunk(m.From, msg)
	case msgDigest:
		r.digest(m.From, msg)
	default:
		r.stats.malformed.Add(1)
	}
}

// putMessage returns a decoded message's slices for reuse: a sync chunk
// holds about a thousand records, and decoding each into fresh slices was
// a large share of a join's garbage. Its strings alias the transport's
// buffer, so they are cleared first.
func (r *Replicator) putMessage(m *message) {
	if cap(m.recs) > 1<<14 {
		return // an outsized one is not worth keeping
	}
	clear(m.recs)
	*m = message{recs: m.recs[:0], digests: m.digests[:0], buckets: m.buckets[:0]}
	r.msgs.Put(m)
}

func (r *Replicator) mergeAll(recs []wireRec) {
	for i := range recs {
		if _, err := r.store.merge(&recs[i]); err != nil {
			r.stats.mergeErrors.Add(1)
			r.log.Warn("usrloc: binding refused", "aor", recs[i].AOR, "err", err)
		}
	}
}

func (r *Replicator) send(to cluster.NodeID, m *message) error {
	b := encode(nil, m)
	err := r.tr.Send(to, cluster.ChannelUsrloc, b)
	if err != nil {
		r.stats.sendErrors.Add(1)
	}
	return err
}

// run flushes batches and drives anti-entropy, repairs and the join.
func (r *Replicator) run() {
	defer r.wg.Done()
	var tickC <-chan time.Time // nil (never ready) when writers send at once
	if r.cfg.BatchInterval > 0 {
		tick := time.NewTicker(r.cfg.BatchInterval)
		defer tick.Stop()
		tickC = tick.C
	}
	ctl := time.NewTicker(50 * time.Millisecond)
	defer ctl.Stop()
	lastAE := r.cfg.Now()
	pending := false
	for {
		select {
		case <-r.quit:
			return
		case <-r.kick:
			pending = true
		case <-tickC:
			if pending {
				r.flush()
				pending = false
			}
		case <-ctl.C:
			now := r.cfg.Now()
			r.driveJoin(now)
			r.checkPulls(now)
			r.runRepairs()
			if r.cfg.AntiEntropyInterval > 0 && now.Sub(lastAE) >= r.cfg.AntiEntropyInterval && r.isSynced.Load() {
				lastAE = now
				r.antiEntropyRound()
			}
		}
	}
}

// alivePeers lists the peers this node can reach, by ID.
func (r *Replicator) alivePeers() []cluster.NodeID {
	var out []cluster.NodeID
	for _, m := range r.tr.Members() {
		if m.State == cluster.StateUp {
			out = append(out, m.ID)
		}
	}
	return out
}

// replStats are the replicator's counters.
type replStats struct {
	updatesSent, updatesRecv, batchesSent           atomic.Uint64
	sendErrors, gaps, malformed, mergeErrors        atomic.Uint64
	repairs, pullsStarted, pullsDone, pullsAborted  atomic.Uint64
	chunksSent, chunksRecv, verifyRounds, verifyBad atomic.Uint64
	resyncs, skippedStale, pruned                   atomic.Uint64
}

// ReplicatorStats is a snapshot of the counters.
type ReplicatorStats struct {
	Synced                                  bool
	UpdatesSent, UpdatesReceived, Batches   uint64
	SendErrors, Gaps, Malformed, MergeError uint64
	Repairs                                 uint64
	PullsStarted, PullsDone, PullsAborted   uint64
	ChunksSent, ChunksReceived              uint64
	VerifyRounds, VerifyMismatchedBuckets   uint64
	// Resyncs counts full resyncs after this node was cut off from every
	// peer for longer than TombstoneTTL; Pruned the stale bindings they
	// dropped; SkippedStale the stale versions refused from returning peers.
	Resyncs, Pruned, SkippedStale uint64
}

// Stats returns the counters.
func (r *Replicator) Stats() ReplicatorStats {
	s := &r.stats
	return ReplicatorStats{Synced: r.isSynced.Load(),
		UpdatesSent: s.updatesSent.Load(), UpdatesReceived: s.updatesRecv.Load(), Batches: s.batchesSent.Load(),
		SendErrors: s.sendErrors.Load(), Gaps: s.gaps.Load(), Malformed: s.malformed.Load(), MergeError: s.mergeErrors.Load(),
		Repairs: s.repairs.Load(), PullsStarted: s.pullsStarted.Load(), PullsDone: s.pullsDone.Load(), PullsAborted: s.pullsAborted.Load(),
		ChunksSent: s.chunksSent.Load(), ChunksReceived: s.chunksRecv.Load(),
		VerifyRounds: s.verifyRounds.Load(), VerifyMismatchedBuckets: s.verifyBad.Load(),
		Resyncs: s.resyncs.Load(), Pruned: s.pruned.Load(), SkippedStale: s.skippedStale.Load()}
}
