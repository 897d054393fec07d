package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/examples/registrar/proxy"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/siphatest"
)

// cps is the cluster-wide limit of new INVITEs per second.
const cps = 50

// sipCluster is the demo's cluster: siphatest's nodes, each serving SIP
// with examples/registrar's proxy over its blocks, and each node's dialog
// tracker posting CDRs through its poster with the proxy's CDR sink.
type sipCluster struct {
	*siphatest.Cluster
	log *slog.Logger

	mu      sync.Mutex
	sinks   map[cluster.NodeID]*proxy.CDRSink // of the running incarnations
	proxies map[cluster.NodeID]*proxy.Proxy
}

// startCluster starts the demo's three nodes with siphatest on loopback:
// the real TCP transport and Raft on temporary directories, with usrloc,
// dialog, ratelimit and a CDR poster on every node posting to collectors in
// failover order, then a SIP proxy on each. The VIP resource is placed on
// the ownership layer alone: the harness's VIP block would wait for the
// address's lifetime on a crash (see package siphatest), and the demo
// times the ownership failover.
func startCluster(tb siphatest.TB, collectors []string, verbose io.Writer) (*sipCluster, error) {
	level := slog.LevelWarn + 100 // silent unless -v
	if verbose != nil {
		level = slog.LevelInfo
	} else {
		verbose = io.Discard
	}
	var eps []cdr.Endpoint
	for _, u := range collectors {
		eps = append(eps, cdr.Endpoint{URL: u, Timeout: 500 * time.Millisecond})
	}
	s := &sipCluster{log: slog.New(slog.NewTextHandler(verbose, &slog.HandlerOptions{Level: level})),
		sinks: map[cluster.NodeID]*proxy.CDRSink{}, proxies: map[cluster.NodeID]*proxy.Proxy{}}
	s.Cluster = siphatest.NewCluster(tb, 3, siphatest.Options{
		Loopback:    true,
		Disable:     siphatest.BlockVIPs,
		Limits:      map[string]ratelimit.Limit{proxy.CPSPipe: {Rate: cps}},
		Logger:      s.log,
		Tune:        func(_ cluster.NodeID, c *siphatest.Configs) { c.CDR.Endpoints = eps },
		OnTerminate: s.attachSink,
	})
	for _, id := range s.IDs() {
		if err := s.serve(id, "127.0.0.1:0"); err != nil {
			s.closeProxies()
			return nil, err
		}
	}
	return s, nil
}

// attachSink is siphatest's OnTerminate: every incarnation of a node gets
// a CDR sink on its poster, closed when the node stops.
func (s *sipCluster) attachSink(n *siphatest.Node) (func(dialog.TerminateEvent), func()) {
	sink := proxy.NewCDRSink(n.CDR, n.ID, s.log.With("node", string(n.ID)))
	s.mu.Lock()
	s.sinks[n.ID] = sink
	s.mu.Unlock()
	return sink.Hook, func() { sink.Close() }
}

// serve starts node id's SIP proxy over its blocks on a UDP (and TCP)
// address of 127.0.0.1.
func (s *sipCluster) serve(id cluster.NodeID, listen string) error {
	n := s.Node(id)
	s.mu.Lock()
	sink := s.sinks[id]
	s.mu.Unlock()
	p, err := proxy.New(proxy.Blocks{Transport: n.Transport, Ownership: n.Ownership, Store: n.Locations.Store,
		Replicator: n.Locations.Replicator, Registrar: n.Locations.Registrar, Dialogs: n.Dialogs,
		Limiter: n.Limiter, CDR: sink}, proxy.Config{Listen: listen, Logger: s.log.With("node", string(id))})
	if err != nil {
		return fmt.Errorf("proxy on %s: %w", id, err)
	}
	s.mu.Lock()
	s.proxies[id] = p
	s.mu.Unlock()
	return nil
}

// sip is node id's SIP address ("" when its proxy is down).
func (s *sipCluster) sip(id cluster.NodeID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.proxies[id]; p != nil {
		return p.Addr()
	}
	return ""
}

// crash takes node id down as a crash would: its SIP socket closes and its
// cluster connections drop, with no goodbye and no handover.
func (s *sipCluster) crash(id cluster.NodeID) {
	s.mu.Lock()
	p := s.proxies[id]
	delete(s.proxies, id)
	s.mu.Unlock()
	if p != nil {
		p.Close()
	}
	s.Kill(id)
}

func (s *sipCluster) closeProxies() {
	s.mu.Lock()
	ps := s.proxies
	s.proxies = map[cluster.NodeID]*proxy.Proxy{}
	s.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
}

// holder reports which running node holds a resource now, and how many do
// (more than one would be a split brain).
func holder(c *sipCluster, res string) (cluster.NodeID, ownership.Epoch, int) {
	h := c.Holders(res)
	if len(h) == 0 {
		return "", 0, 0
	}
	epoch, _ := c.Node(h[len(h)-1]).Ownership.Held(res)
	return h[len(h)-1], epoch, len(h)
}

// waitFor polls cond every 5 ms until it holds or the timeout passes.
func waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
