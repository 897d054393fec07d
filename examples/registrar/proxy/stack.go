package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/usrloc"
	"github.com/sipha/sipha/vip"
)

// StackConfig describes one node's blocks for Start. The zero value of every
// field but ID, ClusterAddr, Secret (or Insecure) and DataDir means a default.
type StackConfig struct {
	ID cluster.NodeID
	// ClusterAddr is this node's cluster port (transport and Raft).
	ClusterAddr string
	// Peers are the other nodes of the cluster.
	Peers []cluster.Peer
	// Secret is the cluster HMAC secret (at least 16 bytes); Insecure runs
	// without one (tests and demos only).
	Secret   []byte
	Insecure bool
	// DataDir holds raft/, cdr-spool/ and usrloc.db. Required: the CDR
	// spool must survive a restart.
	DataDir string
	// MemoryRaft keeps Raft's log in memory instead of DataDir/raft (tests).
	MemoryRaft bool
	// CPS is the cluster-wide limit of new INVITEs per second; 0: none.
	CPS float64
	// CDRURLs are the collectors in failover order; none: no CDRs (the
	// sink counts the calls it could not post).
	CDRURLs []string
	// Domain, when set, makes every AOR live in this one domain (see
	// Config.Domain); it must match the proxy's.
	Domain string
	// VIP, when its Prefix is valid, is managed with VIPBackend (required
	// then): only its holder puts the address up.
	VIP        vip.VIP
	VIPBackend vip.Backend

	// ReadyWait bounds how long Start waits for this node's ownership
	// lease before it starts the dialog tracker; default 15 s.
	ReadyWait time.Duration

	// Per-block overrides. Fields the stack wires itself (transports,
	// ownership, hooks, loggers, stores) are overwritten.
	Cluster    cluster.Config
	Raft       raftowner.Config
	Usrloc     usrloc.Config
	Replicator usrloc.ReplicatorConfig
	Registrar  usrloc.RegistrarConfig
	Dialog     dialog.Config
	CDR        cdr.Config
	Logger     *slog.Logger
}

// Stack is one node's set of running blocks, built by Start in dependency
// order and closed in reverse. Proxy serves SIP over its Blocks.
type Stack struct {
	TCP        *cluster.TCP
	Own        *raftowner.Node
	Store      *usrloc.Store
	Persister  *usrloc.Persister
	Replicator *usrloc.Replicator
	Registrar  *usrloc.Registrar
	Dialogs    *dialog.Tracker
	Limiter    *ratelimit.Limiter
	Poster     *cdr.Poster
	CDR        *CDRSink
	VIP        *vip.Manager

	mu      sync.Mutex
	closers []func() error // in start order
	closed  bool
	aborted bool
}

// Start builds and starts every block of one node: the TCP transport, Raft
// ownership on the same port, the location store with its persistence,
// replication and registrar, the CDR poster, the dialog tracker whose
// terminate hook posts CDRs, the cluster-wide CPS limiter and, when
// configured, the VIP manager. On error what was started is closed again.
func Start(ctx context.Context, cfg StackConfig) (_ *Stack, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("proxy: data dir: %w", err)
	}
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// Each block is appended to s.closers as soon as it runs, so an error
	// part way closes exactly what was started.

	cc := cfg.Cluster
	cc.ID, cc.Listen, cc.Peers, cc.Logger = cfg.ID, cfg.ClusterAddr, cfg.Peers, log
	cc.Secret, cc.Insecure = cfg.Secret, cfg.Insecure
	if s.TCP, err = cluster.NewTCP(ctx, cc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.TCP.Close)

	rt, err := raftowner.NewStreamTransport(s.TCP, 0, nil)
	if err != nil {
		return nil, err
	}
	rc := cfg.Raft
	rc.ID, rc.Addr, rc.Logger = cfg.ID, s.TCP.Addr(), log
	rc.Peers = []raftowner.Peer{{ID: cfg.ID, Addr: s.TCP.Addr()}}
	for _, p := range cfg.Peers {
		rc.Peers = append(rc.Peers, raftowner.Peer{ID: p.ID, Addr: p.Addr})
	}
	if !cfg.MemoryRaft {
		rc.DataDir = filepath.Join(cfg.DataDir, "raft")
	}
	if s.Own, err = raftowner.New(s.TCP, rt, rc); err != nil {
		rt.Close()
		return nil, err
	}
	s.closers = append(s.closers, s.shutdownOwn)

	uc := cfg.Usrloc
	uc.Node, uc.Logger = cfg.ID, log
	if s.Store, err = usrloc.New(uc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Store.Close)
	if s.Persister, err = usrloc.OpenPersister(s.Store, usrloc.PersistConfig{
		Path: filepath.Join(cfg.DataDir, "usrloc.db"), Logger: log}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Persister.Close)
	rpc := cfg.Replicator
	rpc.Logger, rpc.StateAsOf = log, s.Persister.LastWritten()
	if s.Replicator, err = usrloc.NewReplicator(s.Store, s.TCP, rpc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Replicator.Close)
	rgc := cfg.Registrar
	rgc.Logger = log
	if cfg.Domain != "" {
		rgc.AOR = func(req *sip.Request) (string, error) { return domainAOR(&req.To().Address, cfg.Domain) }
	}
	if s.Registrar, err = usrloc.NewRegistrar(s.Store, rgc); err != nil {
		return nil, err
	}

	if len(cfg.CDRURLs) > 0 {
		pc := cfg.CDR
		pc.SpoolDir, pc.Logger, pc.Endpoints = filepath.Join(cfg.DataDir, "cdr-spool"), log, nil
		if pc.Format == cdr.FormatJSON {
			pc.Format = cdr.FormatNDJSON
		}
		for _, u := range cfg.CDRURLs {
			pc.Endpoints = append(pc.Endpoints, cdr.Endpoint{URL: u})
		}
		if s.Poster, err = cdr.New(pc); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.Poster.Close)
	}
	s.CDR = NewCDRSink(s.Poster, cfg.ID, log)
	s.closers = append(s.closers, s.CDR.Close)

	// The dialog tracker registers this node's node resource (Sticky, this
	// node first) as it starts. Registered before this node has a lease, the
	// leader gives it to a peer, where Sticky keeps it: every CDR of this
	// node's calls would then be posted by that peer. So wait for the lease
	// first, for a while: a node started long before its peers goes on.
	s.waitReady(ctx, cfg.ReadyWait, log)
	dc := cfg.Dialog
	dc.Transport, dc.Ownership, dc.OnTerminate, dc.Logger = s.TCP, s.Own, s.CDR.Hook, log
	if s.Dialogs, err = dialog.New(dc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Dialogs.Close)

	lc := ratelimit.Config{Transport: s.TCP, Logger: log}
	if cfg.CPS > 0 {
		lc.Pipes = map[string]ratelimit.Limit{CPSPipe: {Rate: cfg.CPS}}
	}
	if s.Limiter, err = ratelimit.New(lc); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Limiter.Close)

	if cfg.VIP.Prefix.IsValid() {
		if s.VIP, err = vip.New(ctx, s.Own, cfg.VIPBackend, vip.Config{VIPs: []vip.VIP{cfg.VIP}, Logger: log}); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.VIP.Close)
	}
	return s, nil
}

// waitReady waits until the ownership layer grants this node a lease, ctx
// ends or d (default 15 s) passes.
func (s *Stack) waitReady(ctx context.Context, d time.Duration, log *slog.Logger) {
	if d <= 0 {
		d = 15 * time.Second
	}
	deadline := time.Now().Add(d)
	for !s.Own.Ready() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			log.Warn("proxy: starting the dialog tracker without an ownership lease", "waited", d)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Blocks are the stack's blocks as Proxy takes them.
func (s *Stack) Blocks() Blocks {
	b := Blocks{Transport: s.TCP, Ownership: s.Own, Store: s.Store, Replicator: s.Replicator,
		Registrar: s.Registrar, Dialogs: s.Dialogs, Limiter: s.Limiter, CDR: s.CDR}
	if s.VIP != nil {
		b.VIP = s.VIP
	}
	return b
}

// shutdownOwn hands this node's resources to the others before Raft stops,
// so its dialogs and VIP move without waiting for a lease to lapse.
func (s *Stack) shutdownOwn() error {
	if s.aborted {
		return nil // closed already, with nothing handed over
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Own.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// Close stops every block in reverse start order: graceful (goodbyes,
// handover of owned resources, CDR spool kept). It is idempotent and safe
// to call concurrently with Abort.
func (s *Stack) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

func (s *Stack) closeLocked() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Abort stops the node as a crash would for its peers: the transport drops
// every connection without a goodbye first, then the rest is closed (the
// ownership layer without handing anything over). For tests and drills.
func (s *Stack) Abort() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.TCP != nil {
		s.TCP.Abort()
	}
	if s.Own != nil {
		s.Own.Close()
		s.aborted = true
	}
	return s.closeLocked()
}
