package dialog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// Tracker tracks the dialogs that pass through this node and, with a
// Transport, every dialog of the cluster. Its methods may be called from
// any goroutine.
type Tracker struct {
	cfg     Config
	self    cluster.NodeID
	tr      cluster.Transport
	own     ownership.Manager
	single  *ownership.Single // created here, closed here
	log     *slog.Logger
	profile profiles
	stats   counters

	mu       sync.Mutex
	dialogs  map[ID]*record
	held     map[cluster.NodeID]heldRes // origin's node resource, held here
	maxEpoch map[cluster.NodeID]uint64  // origin → largest epoch heard of
	timers   timerHeap
	tombs    []*record // terminated, in gcAt order
	sync     syncState
	closed   bool

	bufs      sync.Pool // *[]byte encoding buffers
	wake      chan struct{}
	quit      chan struct{}
	wg        sync.WaitGroup
	stopWatch func()
	stopPeers func()
	closeOnce sync.Once
}

// New starts a tracker. With a Transport it registers on
// cluster.ChannelDialog, asks every peer for its dialogs (see Synced) and
// registers this node's node resource with the ownership manager.
func New(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t := &Tracker{cfg: cfg, tr: cfg.Transport, own: cfg.Ownership, log: cfg.Logger,
		dialogs: make(map[ID]*record), held: make(map[cluster.NodeID]heldRes),
		maxEpoch: make(map[cluster.NodeID]uint64),
		wake:     make(chan struct{}, 1), quit: make(chan struct{})}
	t.profile.init()
	switch {
	case t.own != nil:
		t.self = t.own.LocalID()
	case t.tr != nil:
		t.self = t.tr.LocalID()
	default:
		t.self = "local"
	}
	if t.own == nil {
		t.single = ownership.NewSingle(t.self)
		t.own = t.single
	}
	t.sync.init()
	t.stopWatch = t.own.Watch(ownership.KindNode+"/", t.onOwnership)
	if t.tr != nil {
		t.tr.Handle(cluster.ChannelDialog, cluster.HandlerFunc(t.handle))
		if w, ok := t.tr.(cluster.MemberWatcher); ok {
			t.stopPeers = w.WatchMembers(t.onMember)
		}
		t.startSync()
	}
	if t.single != nil {
		// One node: own our resource before the first call, not a watch
		// event later.
		res := ownership.NodeResource(t.self)
		if err := t.single.Ensure(context.Background(), ownership.Spec{Name: res, Candidates: []cluster.NodeID{t.self}}); err != nil {
			t.Close()
			return nil, err
		}
		ep, _ := t.single.Held(res)
		t.onOwnership(ownership.Event{Resource: res, Kind: ownership.Acquired, Claim: ownership.Claim{Node: t.self, Epoch: ep}})
	} else {
		t.wg.Add(1)
		go t.ensureLoop()
	}
	t.wg.Add(1)
	go t.timerLoop()
	return t, nil
}

// Close stops the tracker's goroutines and waits for them. Dialogs are not
// terminated: the other nodes keep them and the next owner of this node's
// resource takes over their timers. It is idempotent.
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() {
		if t.tr != nil {
			t.tr.Handle(cluster.ChannelDialog, nil)
		}
		if t.stopPeers != nil {
			t.stopPeers()
		}
		t.stopWatch()
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		close(t.quit)
		t.wg.Wait()
		if t.single != nil {
			t.single.Close()
		}
	})
	return nil
}

// LocalID is this node's ID.
func (t *Tracker) LocalID() cluster.NodeID { return t.self }

// candidates orders the nodes that take this node's resource over.
func (t *Tracker) candidates() []cluster.NodeID {
	peers := slices.Clone(t.cfg.Peers)
	if peers == nil && t.tr != nil {
		for _, m := range t.tr.Members() {
			peers = append(peers, m.ID)
		}
		slices.Sort(peers)
	}
	return append([]cluster.NodeID{t.self}, peers...)
}

// ensureLoop registers this node's resource, retrying while the ownership
// layer is unavailable (no leader yet).
func (t *Tracker) ensureLoop() {
	defer t.wg.Done()
	spec := ownership.Spec{Name: ownership.NodeResource(t.self), Candidates: t.candidates(), Policy: ownership.Preferred}
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() {
			select {
			case <-t.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := t.own.Ensure(ctx, spec)
		cancel()
		if err == nil {
			return
		}
		t.log.Warn("dialog: registering node resource", "resource", spec.Name, "err", err)
		select {
		case <-t.quit:
			return
		case <-time.After(backoff):
		}
	}
}

// Get returns a snapshot of a dialog this node knows.
func (t *Tracker) Get(id ID) (Info, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.dialogs[id]
	if r == nil {
		return Info{}, false
	}
	return r.info(), true
}

// Len counts the dialogs this node holds that have not ended (cluster-wide
// once synced).
func (t *Tracker) Len() int {
	return int(t.stats.live.Load())
}

// Dialogs snapshots every dialog this node knows, ended ones (tombstones)
// included.
func (t *Tracker) Dialogs() []Info {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Info, 0, len(t.dialogs))
	for _, r := range t.dialogs {
		out = append(out, r.info())
	}
	return out
}

// heldRes is a node resource this node holds; the name is kept so the hot
// path does not build it.
type heldRes struct {
	epoch uint64
	name  string
}

// effects are what a change does outside the lock: hooks and replication.
type effects struct {
	state   bool
	info    Info
	old     State
	term    *TerminateEvent
	payload []byte
}

func (t *Tracker) run(e *effects) {
	if e == nil {
		return
	}
	if e.payload != nil {
		t.broadcast(e.payload)
		t.putBuf(e.payload) // Broadcast copied it
	}
	if e.state && t.cfg.OnState != nil {
		t.cfg.OnState(e.info, e.old)
	}
	if e.term != nil && t.cfg.OnTerminate != nil {
		t.stats.hooks.Add(1)
		t.cfg.OnTerminate(*e.term)
	}
}

// change runs fn on the dialog under the lock and then keeps every derived
// structure right: profile counters, timers, tombstones, hooks to fire and
// the update to replicate. create makes the record if it is missing.
func (t *Tracker) change(id ID, create bool, fn func(r *record) bool) (*effects, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	r := t.dialogs[id]
	fresh := false
	if r == nil {
		if !create {
			return nil, ErrUnknown
		}
		r = &record{id: id, timerIdx: -1}
		fresh = true
	}
	var buf [4]ProfileKey
	before, old := r.active(buf[:0]), r.state
	if !fn(r) && !fresh {
		return nil, nil
	}
	if fresh {
		t.dialogs[id] = r
		t.stats.live.Add(1)
	}
	return t.after(r, before, old, true), nil
}

// after does the bookkeeping of a changed record; local says the change
// was made here (and so must be replicated as is).
func (t *Tracker) after(r *record, before []ProfileKey, old State, replicate bool) *effects {
	var buf [4]ProfileKey
	now := r.active(buf[:0])
	t.profile.apply(t, r, before, now)
	var e *effects // allocated only when there is something to do
	if r.state != old {
		if t.cfg.OnState != nil {
			e = &effects{state: true, info: r.info(), old: old}
		}
		if r.state == Terminated {
			t.stats.live.Add(-1)
			t.timers.remove(r)
			t.entomb(r)
		}
	}
	if r.state == Terminated {
		if h, ok := t.held[r.origin]; ok && !r.has(flagReported) {
			// The watch can lag a lapsed lease; Held is the authority.
			ep, ok := t.own.Held(h.name)
			if !ok {
				t.retryLocked(r)
				return t.withUpdate(e, r, replicate)
			}
			r.flags |= flagReported
			replicate = true
			if e == nil {
				e = &effects{}
			}
			e.term = &TerminateEvent{Info: r.info(), EventID: r.id.String(), FiredBy: t.self, FiredEpoch: ownership.Epoch(ep)}
		}
	} else if _, ok := t.held[r.origin]; ok {
		t.schedule(r)
	}
	return t.withUpdate(e, r, replicate)
}

// withUpdate adds r's update to e when it must be sent.
func (t *Tracker) withUpdate(e *effects, r *record, replicate bool) *effects {
	if replicate && t.tr != nil {
		if e == nil {
			e = &effects{}
		}
		e.payload = appendRecordMsg(t.getBuf(), r)
	}
	return e
}

// entomb keeps an ended record for TombstoneTTL, or drops it at once.
func (t *Tracker) entomb(r *record) {
	if t.cfg.TombstoneTTL == 0 {
		delete(t.dialogs, r.id)
		return
	}
	r.gcAt = t.cfg.Now().Add(t.cfg.TombstoneTTL).UnixNano()
	t.tombs = append(t.tombs, r)
}

// gc drops expired tombstones.
func (t *Tracker) gcLocked(now int64) {
	i := 0
	for ; i < len(t.tombs) && t.tombs[i].gcAt <= now; i++ {
		r := t.tombs[i]
		if t.dialogs[r.id] == r {
			delete(t.dialogs, r.id)
		}
		t.tombs[i] = nil
	}
	if i > 0 {
		t.tombs = t.tombs[i:]
		if cap(t.tombs) > 1024 && len(t.tombs) < cap(t.tombs)/4 {
			t.tombs = slices.Clone(t.tombs)
		}
	}
}

// knownEpoch is the largest epoch of origin's node resource this node has
// heard of.
func (t *Tracker) knownEpochLocked(origin cluster.NodeID) uint64 {
	e := t.maxEpoch[origin]
	if h, ok := t.held[origin]; ok {
		e = max(e, h.epoch)
	}
	return e
}

func (t *Tracker) getBuf() []byte {
	if p, ok := t.bufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, 512)
}

func (t *Tracker) putBuf(b []byte) {
	if cap(b) <= 64<<10 {
		t.bufs.Put(&b)
	}
}
