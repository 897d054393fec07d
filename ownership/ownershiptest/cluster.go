package ownershiptest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/raftowner"
)

// Port is the cluster port every test node listens on ("n1:7946").
const Port = "7946"

// Config configures a test cluster.
type Config struct {
	// Nodes names the nodes; required. They bootstrap together.
	Nodes []cluster.NodeID
	// Roles gives nodes a role other than raftowner.RoleNode.
	Roles map[cluster.NodeID]raftowner.Role
	// Seed seeds the network's random choices.
	Seed int64
	// Tune adjusts each node's raftowner config before it starts.
	Tune func(*raftowner.Config)
	// Logger receives the nodes' logs; default discards.
	Logger *slog.Logger
	// Clock, when set, gives each host's clock offset and rate before its
	// node first starts (see clustertest.Host.SetClock).
	Clock func(id cluster.NodeID) (offset time.Duration, rate float64)
}

// Cluster is a running test cluster. Its methods may be called from any
// goroutine.
type Cluster struct {
	// Net is the network; its hosts are named after the nodes.
	Net *clustertest.Network

	t      testing.TB
	cfg    Config
	peers  []raftowner.Peer
	secret []byte

	mu    sync.Mutex
	nodes map[cluster.NodeID]*member
	ids   []cluster.NodeID
}

type member struct {
	id   cluster.NodeID
	role raftowner.Role
	dir  string
	via  []cluster.NodeID // joins through these instead of bootstrapping
	tcp  *cluster.TCP
	node *raftowner.Node
}

// Addr is the cluster address of a test node.
func Addr(id cluster.NodeID) string { return string(id) + ":" + Port }

// New starts the cluster and closes it when the test ends.
func New(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{Net: clustertest.NewNetwork(cfg.Seed), t: t, cfg: cfg,
		secret: []byte("ownershiptest-secret-0123456789"), nodes: map[cluster.NodeID]*member{}}
	dir := t.TempDir()
	for _, id := range cfg.Nodes {
		c.peers = append(c.peers, raftowner.Peer{ID: id, Addr: Addr(id)})
		c.nodes[id] = &member{id: id, role: cfg.Roles[id], dir: filepath.Join(dir, string(id))}
		c.ids = append(c.ids, id)
	}
	t.Cleanup(c.Close)
	if cfg.Clock != nil {
		for _, id := range cfg.Nodes {
			c.Net.Host(string(id)).SetClock(cfg.Clock(id))
		}
	}
	for _, id := range cfg.Nodes {
		c.Start(id)
	}
	c.WaitReady(30 * time.Second)
	return c
}

// WaitReady waits until there is a leader and every running node that may
// own resources holds a valid lease, so the next Ensure lands on the
// primary rather than on whoever renewed first.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	c.waitFor(timeout, "a leader and every node's lease", func() bool {
		if c.Leader() == "" {
			return false
		}
		for _, id := range c.IDs() {
			c.mu.Lock()
			m := c.nodes[id]
			c.mu.Unlock()
			if n := c.Node(id); n != nil && m.role != raftowner.RoleArbiter && !n.Ready() {
				return false
			}
		}
		return true
	})
}

// IDs lists the nodes in the order given, then the added ones.
func (c *Cluster) IDs() []cluster.NodeID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]cluster.NodeID(nil), c.ids...)
}

// Start starts a stopped node (with its data directory as it was left).
func (c *Cluster) Start(id cluster.NodeID) {
	c.t.Helper()
	if err := c.start(id); err != nil {
		c.t.Fatalf("ownershiptest: start %s: %v", id, err)
	}
}

func (c *Cluster) start(id cluster.NodeID) error {
	c.mu.Lock()
	m := c.nodes[id]
	c.mu.Unlock()
	if m == nil {
		return fmt.Errorf("unknown node %s", id)
	}
	if m.node != nil {
		return fmt.Errorf("running")
	}
	c.Net.Restart(string(id))
	host := c.Net.Host(string(id))
	var peers []cluster.Peer
	for _, p := range c.peers {
		if p.ID != id {
			peers = append(peers, cluster.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	if m.via != nil {
		peers = nil
		for _, v := range m.via {
			peers = append(peers, cluster.Peer{ID: v, Addr: Addr(v)})
		}
	}
	log := c.cfg.Logger.With("node", id)
	tcp, err := cluster.NewTCP(context.Background(), cluster.Config{ID: id, Listen: Addr(id), Peers: peers,
		Secret: c.secret, Network: host, Now: host.Now, Logger: log})
	if err != nil {
		return err
	}
	rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
	if err != nil {
		tcp.Close()
		return err
	}
	cfg := c.config(m)
	cfg.Now, cfg.Logger = host.Now, log
	n, err := raftowner.New(tcp, rt, cfg)
	if err != nil {
		tcp.Close()
		return err
	}
	c.mu.Lock()
	m.tcp, m.node = tcp, n
	c.mu.Unlock()
	return nil
}

func (c *Cluster) config(m *member) raftowner.Config {
	cfg := raftowner.Config{ID: m.id, Addr: Addr(m.id), Role: m.role, DataDir: m.dir, Peers: c.peers}
	if m.via != nil {
		cfg.Peers, cfg.Join, cfg.JoinVia = nil, true, m.via
	}
	if c.cfg.Tune != nil {
		c.cfg.Tune(&cfg)
	}
	return cfg
}

// Add starts a new node with an empty data directory that joins the
// running cluster through the nodes in via (the leader adds it to Raft as
// a voter, or a non-voter for a spare).
func (c *Cluster) Add(id cluster.NodeID, role raftowner.Role, via ...cluster.NodeID) {
	c.t.Helper()
	c.mu.Lock()
	if c.nodes[id] != nil {
		c.mu.Unlock()
		c.t.Fatalf("ownershiptest: add %s: exists", id)
	}
	c.nodes[id] = &member{id: id, role: role, dir: filepath.Join(c.t.TempDir(), string(id)), via: via}
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	c.Start(id)
}

// Recover runs raftowner.Recover on a stopped node's data directory so
// that survivors alone form the cluster (see raftowner.Recover).
func (c *Cluster) Recover(id cluster.NodeID, survivors ...cluster.NodeID) error {
	c.mu.Lock()
	m := c.nodes[id]
	c.mu.Unlock()
	if m == nil || m.node != nil {
		return fmt.Errorf("ownershiptest: recover %s: unknown or running", id)
	}
	var peers []raftowner.Peer
	for _, s := range survivors {
		peers = append(peers, raftowner.Peer{ID: s, Addr: Addr(s)})
	}
	cfg := c.config(m)
	cfg.Join, cfg.JoinVia = false, nil
	return raftowner.Recover(cfg, peers)
}

// Kill crashes a node: its host dies on the network at once (peers see
// resets, nothing more leaves it), then its process stops.
func (c *Cluster) Kill(id cluster.NodeID) {
	c.mu.Lock()
	m := c.nodes[id]
	n, tcp := m.node, m.tcp
	m.node, m.tcp = nil, nil
	c.mu.Unlock()
	if n == nil {
		return
	}
	c.Net.Kill(string(id))
	n.Close()
	tcp.Close()
}

// Stop stops a node gracefully with raftowner's Shutdown (handing its
// resources over), then closes its transport.
func (c *Cluster) Stop(ctx context.Context, id cluster.NodeID) error {
	c.mu.Lock()
	m := c.nodes[id]
	n, tcp := m.node, m.tcp
	m.node, m.tcp = nil, nil
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	err := n.Shutdown(ctx)
	tcp.Close()
	c.Net.Kill(string(id))
	return err
}

// Close stops every node and the network. It is idempotent.
func (c *Cluster) Close() {
	for _, id := range c.IDs() {
		c.Kill(id)
	}
	c.Net.Close()
}

// Node returns a running node, or nil.
func (c *Cluster) Node(id cluster.NodeID) *raftowner.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.nodes[id]; m != nil {
		return m.node
	}
	return nil
}

// Any returns some running node.
func (c *Cluster) Any() *raftowner.Node {
	for _, id := range c.IDs() {
		if n := c.Node(id); n != nil {
			return n
		}
	}
	return nil
}

// Leader returns the node that is Raft leader now, or "".
func (c *Cluster) Leader() cluster.NodeID {
	for _, id := range c.IDs() {
		if n := c.Node(id); n != nil && n.IsLeader() {
			return id
		}
	}
	return ""
}

// Holder reports which running node holds res (the last one found) and
// how many do.
func (c *Cluster) Holder(res string) (cluster.NodeID, ownership.Epoch, int) {
	var id cluster.NodeID
	var e ownership.Epoch
	count := 0
	for _, x := range c.IDs() {
		if n := c.Node(x); n != nil {
			if ep, ok := n.Held(res); ok {
				id, e = x, ep
				count++
			}
		}
	}
	return id, e, count
}

// WaitHolder waits until exactly one node holds res and ok (if not nil)
// accepts it.
func (c *Cluster) WaitHolder(res string, timeout time.Duration, ok func(cluster.NodeID) bool) (cluster.NodeID, ownership.Epoch) {
	c.t.Helper()
	var id cluster.NodeID
	var e ownership.Epoch
	c.waitFor(timeout, "a holder of "+res, func() bool {
		var n int
		id, e, n = c.Holder(res)
		return n == 1 && (ok == nil || ok(id))
	})
	return id, e
}

// Ensure registers a resource through some running node.
func (c *Cluster) Ensure(spec ownership.Spec) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Any().Ensure(ctx, spec); err != nil {
		c.t.Fatalf("ownershiptest: ensure %s: %v", spec.Name, err)
	}
}

// SetClockRate changes the rate of a node's clock from now on without a
// jump: leases assume clocks drift but never step.
func (c *Cluster) SetClockRate(id cluster.NodeID, rate float64) {
	h := c.Net.Host(string(id))
	h.SetClock(h.Now().Sub(time.Now()), rate)
}

// Isolate cuts a node off in both directions (a silent blackhole).
func (c *Cluster) Isolate(id cluster.NodeID) { c.Net.Blackhole(string(id)) }

// waitFor is WaitFor with the cluster's state in the failure message.
func (c *Cluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("ownershiptest: timed out after %v waiting for %s; cluster:\n%s", timeout, what, c.Dump())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitFor polls cond every few milliseconds until it holds, failing the
// test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("ownershiptest: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Dump describes every node's view (role, leader, lease, members, table),
// for failure messages.
func (c *Cluster) Dump() string {
	var b strings.Builder
	for _, id := range c.IDs() {
		n := c.Node(id)
		if n == nil {
			fmt.Fprintf(&b, "%s: down\n", id)
			continue
		}
		fmt.Fprintf(&b, "%s: leader=%s isLeader=%v ready=%v members=%v\n", id, n.Leader(), n.IsLeader(), n.Ready(), n.Members())
		for _, r := range n.Table() {
			fmt.Fprintf(&b, "    %+v\n", r)
		}
	}
	return b.String()
}
