package siphatest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/vip/viptest"
)

// Cluster is an N-node sipha cluster in one process. Its methods may be
// called from any goroutine, except that the ones failing the test
// (NewCluster, Restart, Eventually, the network faults under Loopback) must
// be called from the test's goroutine, as t.Fatalf requires.
type Cluster struct {
	t         TB
	opts      Options
	ids       []cluster.NodeID
	addrs     map[cluster.NodeID]string
	spare     map[cluster.NodeID]bool
	dir       string
	secret    []byte
	seed      int64
	log       *slog.Logger
	net       *clustertest.Network // nil with Loopback
	vipLog    *viptest.Log
	collector *Collector // nil without the CDR block

	mu     sync.Mutex
	nodes  map[cluster.NodeID]*Node // running incarnations
	closed bool
}

// NewCluster starts n nodes named n1…nN, each with a transport, an
// ownership node and the blocks opts enables, waits until the cluster is
// ready (see WaitReady) and registers its cleanup with t: every node is
// stopped and, unless opts.NoLeakCheck, the test fails if a goroutine
// started after NewCluster was called is still running a few seconds
// later. It fails the test on invalid options or a cluster that does not
// come up.
func NewCluster(t TB, n int, opts Options) *Cluster {
	t.Helper()
	if err := opts.validFor(n); err != nil {
		t.Fatalf("%v", err)
	}
	if !opts.NoLeakCheck {
		// First, so that its cleanup runs after every other.
		clustertest.CheckLeaks(t)
	}
	c := &Cluster{t: t, opts: opts, addrs: map[cluster.NodeID]string{}, spare: map[cluster.NodeID]bool{},
		dir: t.TempDir(), secret: []byte("siphatest cluster secret " + t.Name()), log: opts.Logger,
		vipLog: viptest.NewLog(nil), nodes: map[cluster.NodeID]*Node{}}
	switch {
	case c.log != nil:
	case os.Getenv("SIPHA_DEBUG") != "":
		c.log = TestLogger(t, slog.LevelDebug)
	default:
		c.log = slog.New(slog.DiscardHandler)
	}
	for i := range n {
		id := cluster.NodeID(fmt.Sprintf("n%d", i+1))
		c.ids = append(c.ids, id)
		c.spare[id] = i >= n-opts.Spares
	}
	t.Cleanup(c.close)
	if err := c.lay(); err != nil {
		t.Fatalf("siphatest: %v", err)
	}
	if opts.runs(BlockCDRs) {
		col, err := startCollector()
		if err != nil {
			t.Fatalf("siphatest: CDR collector: %v", err)
		}
		c.collector = col
	}
	start := time.Now()
	cfs := map[cluster.NodeID]*Configs{}
	for _, id := range c.ids {
		cfs[id] = c.configs(id, true)
		nd, err := c.startCore(cfs[id])
		if err != nil {
			t.Fatalf("siphatest: start %s: %v", id, err)
		}
		c.mu.Lock()
		c.nodes[id] = nd
		c.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout())
	defer cancel()
	// Blocks start on every node at once: a dialog tracker asks its peers'
	// trackers for their tables at start, and one started much later would
	// cost a sync retry.
	errs := make([]error, len(c.ids))
	var wg sync.WaitGroup
	for i, id := range c.ids {
		wg.Go(func() { errs[i] = c.startBlocks(ctx, c.Node(id), cfs[id]) })
	}
	wg.Wait()
	for i, id := range c.ids {
		if errs[i] != nil {
			c.mu.Lock()
			delete(c.nodes, id)
			c.mu.Unlock()
			t.Fatalf("siphatest: start %s: %v", id, errs[i])
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatalf("siphatest: %v", err)
	}
	t.Logf("siphatest: %d nodes ready in %v (network seed %d%s)", n, time.Since(start).Round(time.Millisecond),
		c.seed, map[bool]string{true: ", loopback TCP", false: ""}[opts.Loopback])
	return c
}

// lay picks the network and every node's address.
func (c *Cluster) lay() error {
	if !c.opts.Loopback {
		c.seed = c.opts.Seed
		for c.seed == 0 {
			c.seed = rand.Int64()
		}
		c.net = clustertest.NewNetwork(c.seed)
		for _, id := range c.ids {
			c.addrs[id] = string(id) + ":" + clustertest.Port
		}
		return nil
	}
	// Every node must know every peer's address before any starts (Raft
	// bootstraps from the full list), so reserve a port each.
	for _, id := range c.ids {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		c.addrs[id] = ln.Addr().String()
		ln.Close()
	}
	return nil
}

// close stops every node, the collector and the network. It runs at the
// test's cleanup.
func (c *Cluster) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	for _, id := range c.ids {
		c.Kill(id)
	}
	if c.collector != nil {
		c.collector.close()
	}
	if c.net != nil {
		c.net.Close()
	}
}

// IDs lists every node, running or not, in order.
func (c *Cluster) IDs() []cluster.NodeID { return append([]cluster.NodeID(nil), c.ids...) }

// Node returns the running incarnation of node id, or nil when it is down
// or unknown.
func (c *Cluster) Node(id cluster.NodeID) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Running lists the running nodes in ID order.
func (c *Cluster) Running() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, id := range c.ids {
		if n := c.nodes[id]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Seed is the in-memory network's seed (0 with Loopback): pass it as
// Options.Seed to replay a run.
func (c *Cluster) Seed() int64 { return c.seed }

// VIPLog is the recording fake every node's VIP backend writes to: who
// had which address up when, and every overlap (Conflicts).
func (c *Cluster) VIPLog() *viptest.Log { return c.vipLog }

// Collector is the CDR collector every node posts to, or nil without the
// CDR block.
func (c *Cluster) Collector() *Collector { return c.collector }

// Leader returns the Raft leader as the running nodes see it, or "" when
// there is none or they disagree.
func (c *Cluster) Leader() cluster.NodeID {
	var leader cluster.NodeID
	for _, n := range c.Running() {
		l := n.Ownership.Leader()
		if l == "" || (leader != "" && l != leader) {
			return ""
		}
		leader = l
	}
	return leader
}

// Owner reports the committed owner of a resource as the leader's replica
// has it (the first running node's when there is no leader).
func (c *Cluster) Owner(resource string) (ownership.Claim, bool) {
	running := c.Running()
	if len(running) == 0 {
		return ownership.Claim{}, false
	}
	from := running[0]
	for _, n := range running {
		if n.Ownership.IsLeader() {
			from = n
		}
	}
	return from.Ownership.Owner(resource)
}

// Holders lists the running nodes that hold a resource now (committed to
// them and under a valid lease). More than one is a split brain.
func (c *Cluster) Holders(resource string) []cluster.NodeID {
	var out []cluster.NodeID
	for _, n := range c.Running() {
		if _, ok := n.Ownership.Held(resource); ok {
			out = append(out, n.ID)
		}
	}
	return out
}

// Eventually polls cond every few milliseconds until it holds, and fails
// the test with the cluster's state when Options.Timeout passes first.
func (c *Cluster) Eventually(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.timeout())
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("siphatest: timed out after %v waiting for %s; cluster:\n%s", c.opts.timeout(), what, c.Dump())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Dump describes every node's view (leader, lease, ownership table, peers),
// for failure messages.
func (c *Cluster) Dump() string {
	var b strings.Builder
	for _, id := range c.ids {
		n := c.Node(id)
		if n == nil {
			fmt.Fprintf(&b, "%s: down\n", id)
			continue
		}
		fmt.Fprintf(&b, "%s: leader=%s ready=%v peers=[", id, n.Ownership.Leader(), n.Ownership.Ready())
		for _, m := range n.Transport.Members() {
			fmt.Fprintf(&b, " %s:%s", m.ID, m.State)
		}
		b.WriteString(" ]\n")
		for _, r := range n.Ownership.Table() {
			fmt.Fprintf(&b, "    %s owner=%s epoch=%d\n", r.Name, r.Owner, r.Epoch)
		}
	}
	return b.String()
}
