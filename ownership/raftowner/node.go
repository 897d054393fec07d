package raftowner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/internal/watch"
)

// Node is one member of the ownership cluster: a Raft node with the
// ownership FSM, the lease client that keeps this node's resources held,
// and, while it leads, the lease server and the reassignment loop. It
// implements ownership.Manager.
type Node struct {
	cfg  Config
	tr   cluster.Transport
	raft *raft.Raft
	fsm  *fsm
	logs raft.LogStore // read by the leader to find the last command
	hub  watch.Hub[ownership.Event]
	mhub watch.Hub[[]ownership.Member] // membership watchers (members.go)
	// closers release the stores after raft has shut down.
	closers []io.Closer
	stable  *guardedStable

	mu          sync.Mutex
	lease       leaseState
	announced   map[string]ownership.Epoch // resources we told watchers we hold
	evalValid   bool                       // the lease's validity at the last evalLocked
	lastMembers []ownership.Member         // as last published to mhub
	draining    bool
	unhealthy   bool
	placers     map[string]ownership.PlaceFunc
	// knownPeers are the peers given to the transport (memberLoop only).
	knownPeers map[cluster.NodeID]string
	nextReqID  uint64
	pending    map[uint64]chan string
	closed     bool

	renewCh   chan renewal      // renewals for the leader loop
	confirmCh chan confirmation // voters' answers to confirmation rounds
	reportCh  chan answerReport // voters' reports for the takeover bound
	// transferCh asks the leader loop to hand leadership on (Shutdown).
	transferCh                  chan chan error
	transferring                atomic.Bool // a leadership transfer runs
	transfers, transferFailures atomic.Uint64
	answers                     *answerLog      // this node's confirmation answers
	requestCh                   chan inbound    // requests for the request worker
	kick                        chan struct{}   // re-evaluate held resources now
	leaderKck                   chan struct{}   // re-run the leader's reassignment now
	touched                     touchSet        // what leaderKck's reassignment looks at
	quit                        chan struct{}   // closed by Close
	ctx                         context.Context // canceled by Close, for internal requests
	cancel                      context.CancelFunc
	wg                          sync.WaitGroup // every goroutine of the node
	closeOnce                   sync.Once
	closeErr                    error
}

// inbound is a request from another node, or from this node (reply nil).
type inbound struct {
	from  cluster.NodeID
	msg   message
	reply func(err error)
}

// New starts a node. It registers its handler on tr's ChannelOwnership and
// takes over rt (Raft's transport: NewStreamTransport over cluster.TCP, or
// raft's in-memory one in tests), which it closes on Close. tr stays the
// caller's.
func New(tr cluster.Transport, rt raft.Transport, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if tr.LocalID() != cfg.ID {
		return nil, fmt.Errorf("%w: transport is %q, config %q", ErrConfig, tr.LocalID(), cfg.ID)
	}
	n := &Node{
		cfg:        cfg,
		tr:         tr,
		announced:  map[string]ownership.Epoch{},
		placers:    map[string]ownership.PlaceFunc{},
		knownPeers: map[cluster.NodeID]string{},
		pending:    map[uint64]chan string{},
		renewCh:    make(chan renewal, 1024),
		confirmCh:  make(chan confirmation, 256),
		reportCh:   make(chan answerReport, 256),
		transferCh: make(chan chan error),
		answers:    newAnswerLog(cfg.Now()),
		requestCh:  make(chan inbound, 256),
		kick:       make(chan struct{}, 1),
		leaderKck:  make(chan struct{}, 1),
		quit:       make(chan struct{}),
	}
	n.lease.sent = map[uint64]time.Time{}
	// Sequence numbers and round nonces start at random: an ack or a
	// confirmation meant for an earlier incarnation of this node (or an
	// earlier term of its leadership) can sit in a transport queue across
	// a partition or restart and arrive later, and must not match a renewal
	// or round of now, which it never confirmed.
	n.lease.seq = rand.Uint64()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.fsm = newFSM(n.onChange)
	n.fsm.onTouch = n.touched.add

	rc := raftConfig(cfg)
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}

	logs, rawStable, snaps, closers, err := openStores(cfg)
	if err != nil {
		return nil, err
	}
	stable := &guardedStable{StableStore: rawStable}
	n.stable = stable
	n.closers = closers
	n.logs = logs
	fail := func(err error) (*Node, error) {
		n.cancel()
		rt.(io.Closer).Close()
		n.closeStores()
		return nil, err
	}
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fail(fmt.Errorf("raftowner: read state: %w", err))
	}
	if !has && !cfg.Join {
		var servers []raft.Server
		for _, p := range cfg.Peers {
			s := raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter}
			if p.NonVoter {
				s.Suffrage = raft.Nonvoter
			}
			servers = append(servers, s)
		}
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, rt, raft.Configuration{Servers: servers}); err != nil {
			return fail(fmt.Errorf("raftowner: bootstrap: %w", err))
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, rt)
	if err != nil {
		return fail(fmt.Errorf("raftowner: start raft: %w", err))
	}
	n.raft = r
	tr.Handle(cluster.ChannelOwnership, cluster.HandlerFunc(n.handleMessage))

	n.goFunc(n.leaderLoop)
	n.goFunc(n.requestLoop)
	n.goFunc(n.evalLoop)
	n.goFunc(n.memberLoop)
	if cfg.Role != RoleArbiter {
		n.goFunc(n.renewLoop)
	}
	if cfg.Join {
		n.goFunc(n.joinLoop)
	}
	return n, nil
}

func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func openStores(cfg Config) (raft.LogStore, raft.StableStore, raft.SnapshotStore, []io.Closer, error) {
	if cfg.DataDir == "" {
		s := raft.NewInmemStore()
		return s, s, raft.NewInmemSnapshotStore(), nil, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("raftowner: data dir: %w", err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("raftowner: open log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(cfg.DataDir, 2, slogWriter{cfg.Logger})
	if err != nil {
		bolt.Close()
		return nil, nil, nil, nil, fmt.Errorf("raftowner: open snapshot store: %w", err)
	}
	return bolt, bolt, snaps, []io.Closer{bolt}, nil
}

func (n *Node) closeStores() {
	n.stable.close() // first: see guardedStable
	for _, c := range n.closers {
		c.Close()
	}
}

// slogWriter turns raft's log lines into slog records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Close stops the node at once, without handing anything over (see
// Shutdown): watchers get Lost for what this node held, raft stops, every
// goroutine is waited for, the stores are closed. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.tr.Handle(cluster.ChannelOwnership, nil)
		n.mu.Lock()
		n.closed = true
		n.evalLocked()
		n.mu.Unlock()
		close(n.quit)
		n.cancel()
		if err := n.raft.Shutdown().Error(); err != nil {
			n.closeErr = fmt.Errorf("raftowner: raft shutdown: %w", err)
		}
		n.wg.Wait()
		n.hub.Close()
		n.mhub.Close()
		n.closeStores()
	})
	return n.closeErr
}

// LocalID returns this node's ID.
func (n *Node) LocalID() cluster.NodeID { return n.cfg.ID }

// Owner reports the committed owner as this node's replica knows it.
func (n *Node) Owner(res string) (ownership.Claim, bool) {
	var c ownership.Claim
	ok := false
	n.fsm.view(func(s *state) {
		if r, found := s.resources[res]; found {
			c, ok = ownership.Claim{Node: r.Owner, Epoch: ownership.Epoch(r.Epoch)}, true
		}
	})
	return c, ok
}

// Held reports whether this node holds res: the table commits it to this
// node and the lease is valid (acknowledged, not expired, and this
// replica has applied everything the acknowledging leader had).
func (n *Node) Held(res string) (ownership.Epoch, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.leaseValidLocked() {
		return 0, false
	}
	var e ownership.Epoch
	ok := false
	n.fsm.view(func(s *state) {
		if r, found := s.resources[res]; found && r.Owner == n.cfg.ID {
			e, ok = ownership.Epoch(r.Epoch), true
		}
	})
	return e, ok
}

// Watch implements ownership.Manager.
func (n *Node) Watch(prefix string, fn func(ownership.Event)) (stop func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var initial []ownership.Event
	n.fsm.view(func(s *state) {
		for _, r := range s.sortedResources() {
			if strings.HasPrefix(r.Name, prefix) {
				initial = append(initial, ownership.Event{Resource: r.Name, Kind: ownership.Moved,
					Claim: ownership.Claim{Node: r.Owner, Epoch: ownership.Epoch(r.Epoch)}})
			}
		}
	})
	for _, name := range sortedKeys(n.announced) {
		initial = append(initial, ownership.Event{Resource: name, Kind: ownership.Acquired,
			Claim: ownership.Claim{Node: n.cfg.ID, Epoch: n.announced[name]}})
	}
	return n.hub.Add(ownership.PrefixMatch(prefix), fn, initial)
}

// Ensure registers or updates a resource and waits until it is committed.
// For the Placed policy the node keeps spec.Place and recomputes the
// candidates whenever the committed membership changes.
func (n *Node) Ensure(ctx context.Context, spec ownership.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.Policy == ownership.Placed {
		n.mu.Lock()
		n.placers[spec.Name] = spec.Place
		n.mu.Unlock()
		spec.Candidates = n.place(spec.Name, spec.Place)
	}
	c := command{Kind: cmdEnsure, Name: spec.Name, Candidates: spec.Candidates, Policy: spec.Policy, HoldDown: spec.HoldDown}
	return n.request(ctx, message{Op: opApply, Data: c.encode()})
}

// Remove deletes a resource.
func (n *Node) Remove(ctx context.Context, res string) error {
	if err := ownership.ValidName(res); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.placers, res)
	n.mu.Unlock()
	return n.request(ctx, message{Op: opApply, Data: command{Kind: cmdRemove, Name: res}.encode()})
}

// place runs a placement function over the committed members that may own
// resources.
func (n *Node) place(name string, fn ownership.PlaceFunc) []cluster.NodeID {
	var members []cluster.NodeID
	n.fsm.view(func(s *state) { members = append(s.memberIDs(RoleNode), s.memberIDs(RoleSpare)...) })
	out := fn(name, members)
	// Keep only members, once each, so a sloppy function cannot make an
	// invalid spec.
	seen := map[cluster.NodeID]bool{}
	var clean []cluster.NodeID
	for _, id := range out {
		if !seen[id] && containsID(members, id) {
			seen[id] = true
			clean = append(clean, id)
		}
	}
	return clean
}

// Leader returns the current Raft leader's ID as this node knows it.
func (n *Node) Leader() cluster.NodeID {
	_, id := n.raft.LeaderWithID()
	return cluster.NodeID(id)
}

// SetHealthy reports this node's health: an unhealthy node keeps what it
// holds while no healthy candidate exists, but the leader moves its
// resources to healthy candidates and gives it none.
func (n *Node) SetHealthy(ok bool) {
	n.mu.Lock()
	n.unhealthy = !ok
	n.mu.Unlock()
}

var errClosed = ownership.ErrClosed

func isClosed(err error) bool {
	return errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, errClosed)
}

var _ ownership.Manager = (*Node)(nil)

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Config returns the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// Ready reports whether this node holds a valid lease now and its
// membership is committed, so it can hold resources and the leader counts
// it as a candidate. An arbiter never is. (The lease alone can come first:
// a resource registered in between would be placed without this node.)
func (n *Node) Ready() bool {
	n.mu.Lock()
	valid := !n.closed && n.leaseValidLocked()
	n.mu.Unlock()
	if !valid {
		return false
	}
	member := false
	n.fsm.view(func(s *state) {
		m, ok := s.members[n.cfg.ID]
		member = ok && m.Role == n.cfg.Role
	})
	return member
}

// Row is one resource of the ownership table as this node's replica has it.
type Row struct {
	Name       string
	Owner      cluster.NodeID
	Epoch      ownership.Epoch
	Candidates []cluster.NodeID
	Policy     ownership.Policy
}

// Table returns the ownership table as this node's replica has it, by
// name: for status pages and debugging.
func (n *Node) Table() []Row {
	var rows []Row
	n.fsm.view(func(s *state) {
		for _, r := range s.sortedResources() {
			rows = append(rows, Row{Name: r.Name, Owner: r.Owner, Epoch: ownership.Epoch(r.Epoch),
				Candidates: append([]cluster.NodeID(nil), r.Candidates...), Policy: r.Policy})
		}
	})
	return rows
}

// Stats is a snapshot of a node's counters, for metrics.
type Stats struct {
	// Term is the current Raft term: it grows by one for every election
	// any node started that this node heard of, so its rate shows
	// unstable timing.
	Term uint64
	// LeadershipTransfers and TransferFailures count the hand-overs this
	// node started as leader (arbiter yield, Shutdown).
	LeadershipTransfers, TransferFailures uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{Term: n.raft.CurrentTerm(), LeadershipTransfers: n.transfers.Load(), TransferFailures: n.transferFailures.Load()}
}
