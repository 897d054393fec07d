package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
)

// node is one sipha node of the demo: the cluster transport, the Raft-backed
// ownership layer on the same port, and a CDR poster with its own spool.
type node struct {
	id     cluster.NodeID
	addr   string
	dir    string
	tcp    *cluster.TCP
	own    *raftowner.Node
	poster *cdr.Poster
}

// farm is the demo's cluster: node IDs, fixed loopback addresses, and the
// running nodes.
type farm struct {
	secret    []byte
	peers     []raftowner.Peer
	dir       string
	collector []string // CDR endpoints, in failover order
	log       *slog.Logger

	mu    sync.Mutex
	nodes map[cluster.NodeID]*node
}

// newFarm reserves a loopback port per node, so every node can be told every
// peer's address before any starts (Raft bootstraps from the full list).
func newFarm(ids []cluster.NodeID, dir string, collectors []string, verbose io.Writer) (*farm, error) {
	f := &farm{secret: []byte("sipha demo secret, not for production"), dir: dir,
		collector: collectors, nodes: map[cluster.NodeID]*node{}}
	level := slog.LevelWarn + 100 // silent unless -v
	if verbose != nil {
		level = slog.LevelInfo
	} else {
		verbose = io.Discard
	}
	f.log = slog.New(slog.NewTextHandler(verbose, &slog.HandlerOptions{Level: level}))
	for _, id := range ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		f.peers = append(f.peers, raftowner.Peer{ID: id, Addr: ln.Addr().String()})
		ln.Close()
	}
	return f, nil
}

// start starts (or restarts, on the same data and spool directories) one
// node.
func (f *farm) start(ctx context.Context, id cluster.NodeID) (*node, error) {
	var me raftowner.Peer
	var others []cluster.Peer
	for _, p := range f.peers {
		if p.ID == id {
			me = p
		} else {
			others = append(others, cluster.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	n := &node{id: id, addr: me.Addr, dir: filepath.Join(f.dir, string(id))}
	log := f.log.With("node", string(id))
	var err error
	n.tcp, err = cluster.NewTCP(ctx, cluster.Config{ID: id, Listen: me.Addr, Peers: others, Secret: f.secret, Logger: log})
	if err != nil {
		return nil, err
	}
	rt, err := raftowner.NewStreamTransport(n.tcp, 0, nil)
	if err != nil {
		n.tcp.Close()
		return nil, err
	}
	n.own, err = raftowner.New(n.tcp, rt, raftowner.Config{ID: id, Addr: me.Addr, DataDir: filepath.Join(n.dir, "raft"),
		Peers: f.peers, Logger: log})
	if err != nil {
		n.tcp.Close()
		return nil, err
	}
	var eps []cdr.Endpoint
	for _, u := range f.collector {
		eps = append(eps, cdr.Endpoint{URL: u, Timeout: 500 * time.Millisecond})
	}
	n.poster, err = cdr.New(cdr.Config{Endpoints: eps, SpoolDir: filepath.Join(n.dir, "cdr-spool"),
		Format: cdr.FormatNDJSON, Logger: log})
	if err != nil {
		n.own.Close()
		n.tcp.Close()
		return nil, err
	}
	f.mu.Lock()
	f.nodes[id] = n
	f.mu.Unlock()
	return n, nil
}

// kill stops a node as a crash would: its connections drop with no goodbye
// and no handover, and what it did not deliver stays in its spool.
func (f *farm) kill(id cluster.NodeID) {
	f.mu.Lock()
	n := f.nodes[id]
	delete(f.nodes, id)
	f.mu.Unlock()
	if n == nil {
		return
	}
	n.tcp.Abort()
	n.own.Close()
	n.poster.Close()
}

// node returns a running node.
func (f *farm) node(id cluster.NodeID) *node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[id]
}

// running lists the running nodes in ID order.
func (f *farm) running() []*node {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*node
	for _, p := range f.peers {
		if n := f.nodes[p.ID]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// close stops every node gracefully.
func (f *farm) close() {
	for _, n := range f.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		n.own.Shutdown(ctx)
		cancel()
		n.poster.Close()
		n.tcp.Close()
	}
}

// holder reports which running node holds a resource now, and how many do
// (more than one would be a split brain).
func (f *farm) holder(res string) (cluster.NodeID, ownership.Epoch, int) {
	var id cluster.NodeID
	var epoch ownership.Epoch
	count := 0
	for _, n := range f.running() {
		if e, ok := n.own.Held(res); ok {
			id, epoch = n.id, e
			count++
		}
	}
	return id, epoch, count
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
