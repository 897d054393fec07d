package dialog

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
)

// testCluster runs N nodes in one process, each with the real cluster.TCP
// transport over clustertest's in-memory network, a raftowner.Node sharing
// that transport for ownership, and a Tracker on both. ownershiptest does
// not expose its nodes' transports, hence this small harness built the
// same way.
type testCluster struct {
	t      testing.TB
	Net    *clustertest.Network
	ids    []cluster.NodeID
	dir    string
	tune   func(*Config)
	secret []byte
	hooks  *hookLog

	why string // what the last failed wait saw
	// underflows sums Stats().Underflows of stopped incarnations.
	underflows uint64

	mu    sync.Mutex
	nodes map[cluster.NodeID]*testNode
}

type testNode struct {
	tcp  *cluster.TCP
	own  *raftowner.Node
	dlg  *Tracker
	stop bool
}

// hookLog records terminate events of every node, across restarts.
type hookLog struct {
	mu    sync.Mutex
	fired map[ID][]TerminateEvent
}

func (h *hookLog) add(ev TerminateEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fired[ev.ID] = append(h.fired[ev.ID], ev)
}

func (h *hookLog) get(id ID) []TerminateEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.fired[id])
}

const clusterPort = ":7946"

func newTestCluster(t testing.TB, seed int64, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, Net: clustertest.NewNetwork(seed), dir: t.TempDir(), tune: tune,
		secret: []byte("dialog-test-secret-0123456789"), nodes: map[cluster.NodeID]*testNode{},
		hooks: &hookLog{fired: map[ID][]TerminateEvent{}}}
	for i := range n {
		c.ids = append(c.ids, cluster.NodeID(fmt.Sprintf("n%d", i+1)))
	}
	t.Cleanup(c.Close)
	// Raft first: a node resource registered before its node has a lease
	// would go to a standby and, Sticky, stay there.
	for _, id := range c.ids {
		c.startOwner(id)
	}
	c.Eventually(30*time.Second, "every node's lease", func() bool {
		for _, id := range c.ids {
			c.mu.Lock()
			n := c.nodes[id]
			c.mu.Unlock()
			if !n.own.Ready() {
				return false
			}
		}
		return true
	})
	for _, id := range c.ids {
		c.startTracker(id)
	}
	c.WaitReady()
	return c
}

// Start starts (or restarts, with its Raft data) node id.
func (c *testCluster) Start(id cluster.NodeID) {
	c.t.Helper()
	c.startOwner(id)
	c.startTracker(id)
}

func (c *testCluster) startOwner(id cluster.NodeID) {
	c.t.Helper()
	c.Net.Restart(string(id))
	host := c.Net.Host(string(id))
	var peers []cluster.Peer
	var rpeers []raftowner.Peer
	for _, p := range c.ids {
		rpeers = append(rpeers, raftowner.Peer{ID: p, Addr: string(p) + clusterPort})
		if p != id {
			peers = append(peers, cluster.Peer{ID: p, Addr: string(p) + clusterPort})
		}
	}
	log := slog.New(slog.DiscardHandler)
	tcp, err := cluster.NewTCP(context.Background(), cluster.Config{ID: id, Listen: string(id) + clusterPort,
		Peers: peers, Secret: c.secret, Network: host, Now: host.Now, Logger: log})
	if err != nil {
		c.t.Fatal(err)
	}
	rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	own, err := raftowner.New(tcp, rt, raftowner.Config{ID: id, Addr: string(id) + clusterPort,
		DataDir: filepath.Join(c.dir, string(id)), Peers: rpeers, Now: host.Now, Logger: log})
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[id] = &testNode{tcp: tcp, own: own}
	c.mu.Unlock()
}

func (c *testCluster) startTracker(id cluster.NodeID) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	c.mu.Unlock()
	host := c.Net.Host(string(id))
	log := slog.New(slog.DiscardHandler)
	cfg := Config{Transport: n.tcp, Ownership: n.own, Now: host.Now, Logger: log, OnTerminate: c.hooks.add}
	if c.tune != nil {
		c.tune(&cfg)
	}
	dlg, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	n.dlg = dlg
	c.mu.Unlock()
}

// Kill crashes node id: the network drops it at once, then its parts stop.
func (c *testCluster) Kill(id cluster.NodeID) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	c.Net.Kill(string(id))
	if n.dlg != nil {
		n.dlg.Close()
		c.mu.Lock()
		c.underflows += n.dlg.Stats().Underflows
		c.mu.Unlock()
	}
	// raftowner's Close can hang in hashicorp/raft's pipeline
	// (netPipeline.AppendEntries waiting on a peer that is gone, seen in
	// TestChaos); closing the transport under it releases the pipeline.
	done := make(chan struct{})
	go func() {
		n.own.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		c.t.Logf("raftowner Close of %s hung for 3s; closing its transport under it", id)
		n.tcp.Close()
		<-done
	}
	n.tcp.Close()
}

func (c *testCluster) Close() {
	for _, id := range c.ids {
		c.Kill(id)
	}
	c.Net.Close()
}

// D returns node id's tracker, or nil when it is down.
func (c *testCluster) D(id cluster.NodeID) *Tracker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[id]; n != nil {
		return n.dlg
	}
	return nil
}

func (c *testCluster) Running() []*Tracker {
	var out []*Tracker
	for _, id := range c.ids {
		if d := c.D(id); d != nil { // nil: down, or not started yet
			out = append(out, d)
		}
	}
	return out
}

// WaitReady waits until every running node's node resource has one holder
// and every running node finished its start-up sync. The holder need not be
// the node itself: with the Sticky policy a resource registered while its
// node had no lease yet stays with the standby that took it.
func (c *testCluster) WaitReady() {
	c.t.Helper()
	c.Eventually(30*time.Second, "every node owns its resource and is synced", func() bool {
		for _, id := range c.ids {
			c.mu.Lock()
			n := c.nodes[id]
			c.mu.Unlock()
			if n == nil {
				continue
			}
			if c.Holder(id) == "" {
				c.why = "no holder of node/" + string(id)
				return false
			}
			select {
			case <-n.dlg.Synced():
			default:
				c.why = string(id) + " not synced"
				return false
			}
		}
		return true
	})
}

// Holder is the running node holding origin's node resource.
func (c *testCluster) Holder(origin cluster.NodeID) cluster.NodeID {
	for _, id := range c.ids {
		c.mu.Lock()
		n := c.nodes[id]
		c.mu.Unlock()
		if n != nil {
			if _, ok := n.own.Held(ownership.NodeResource(origin)); ok {
				return id
			}
		}
	}
	return ""
}

func (c *testCluster) Eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	c.why = "" // only cond's own verdict, not an earlier wait's
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for: %s (%s)", timeout, what, c.why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countsAgree reports whether every running node counts want.
func (c *testCluster) countsAgree(profile, value string, want int) bool {
	for _, d := range c.Running() {
		if d.Count(profile, value) != want {
			return false
		}
	}
	return true
}
