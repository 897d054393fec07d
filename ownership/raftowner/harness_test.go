package raftowner

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// skewClock is a node clock running at rate (1±ε) with an offset.
type skewClock struct {
	mu     sync.Mutex
	base   time.Time
	offset time.Duration
	rate   float64
}

func newSkewClock() *skewClock { return &skewClock{base: time.Now(), rate: 1} }

func (c *skewClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Since(c.base)
	return c.base.Add(c.offset + time.Duration(float64(real)*c.rate))
}

// set changes the rate from now on without a jump.
func (c *skewClock) set(rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Since(c.base)
	c.offset += time.Duration(float64(real) * c.rate)
	c.base = c.base.Add(real)
	c.rate = rate
}

type tnode struct {
	id    cluster.NodeID
	role  Role
	dir   string
	clock *skewClock
	rt    *raft.InmemTransport
	tr    *memTransport
	node  *Node
}

// testCluster runs N raftowner nodes in one process on raft's in-memory
// transport and memNet, with bolt stores on disk so killed nodes restart
// with their state.
type testCluster struct {
	t     testing.TB
	net   *memNet
	nodes map[cluster.NodeID]*tnode
	ids   []cluster.NodeID
	peers []Peer
	tune  func(*Config)

	mu   sync.Mutex
	cuts map[[2]cluster.NodeID]bool
}

func newTestCluster(t testing.TB, ids []cluster.NodeID, roles map[cluster.NodeID]Role, tune func(*Config)) *testCluster {
	c := &testCluster{t: t, net: newMemNet(), nodes: map[cluster.NodeID]*tnode{}, ids: ids, tune: tune, cuts: map[[2]cluster.NodeID]bool{}}
	for _, id := range ids {
		c.peers = append(c.peers, Peer{ID: id, Addr: string(id)})
		c.nodes[id] = &tnode{id: id, role: roles[id], dir: t.TempDir(), clock: newSkewClock()}
	}
	for _, id := range ids {
		c.start(id)
	}
	dumpers[t] = c
	return c
}

func (c *testCluster) start(id cluster.NodeID) {
	c.t.Helper()
	tn := c.nodes[id]
	if tn.node != nil {
		c.t.Fatalf("start %s: running", id)
	}
	_, tn.rt = raft.NewInmemTransport(raft.ServerAddress(id))
	tn.tr = c.net.transport(id)
	cfg := Config{ID: id, Addr: string(id), Role: tn.role, DataDir: tn.dir, Peers: c.peers, Now: tn.clock.Now}
	if c.tune != nil {
		c.tune(&cfg)
	}
	c.mu.Lock()
	for _, o := range c.nodes {
		if o.node == nil || o.id == id {
			continue
		}
		if !c.cuts[[2]cluster.NodeID{id, o.id}] {
			tn.rt.Connect(raft.ServerAddress(o.id), o.rt)
		}
		if !c.cuts[[2]cluster.NodeID{o.id, id}] {
			o.rt.Connect(raft.ServerAddress(id), tn.rt)
		}
	}
	c.mu.Unlock()
	n, err := New(tn.tr, tn.rt, cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.mu.Lock()
	tn.node = n
	c.mu.Unlock()
}

// kill stops a node abruptly (no handover).
func (c *testCluster) kill(id cluster.NodeID) {
	tn := c.nodes[id]
	if tn.node == nil {
		return
	}
	c.mu.Lock()
	n := tn.node
	tn.node = nil
	c.mu.Unlock()
	n.Close()
	tn.tr.Close()
	for _, o := range c.nodes {
		if o.rt != nil && o.id != id {
			o.rt.Disconnect(raft.ServerAddress(id))
		}
	}
}

// cut drops traffic from a to b (Raft RPCs a starts, and ownership
// messages); heal undoes every cut.
func (c *testCluster) cut(a, b cluster.NodeID) {
	c.mu.Lock()
	c.cuts[[2]cluster.NodeID{a, b}] = true
	c.mu.Unlock()
	c.net.setCut(a, b, true)
	if ta := c.nodes[a]; ta.node != nil {
		ta.rt.Disconnect(raft.ServerAddress(b))
	}
}

func (c *testCluster) heal() {
	c.mu.Lock()
	cuts := c.cuts
	c.cuts = map[[2]cluster.NodeID]bool{}
	c.mu.Unlock()
	for k := range cuts {
		c.net.setCut(k[0], k[1], false)
		ta, tb := c.nodes[k[0]], c.nodes[k[1]]
		if ta.node != nil && tb.node != nil {
			ta.rt.Connect(raft.ServerAddress(tb.id), tb.rt)
		}
	}
}

// isolate cuts id off in both directions.
func (c *testCluster) isolate(id cluster.NodeID) {
	for _, o := range c.ids {
		if o != id {
			c.cut(id, o)
			c.cut(o, id)
		}
	}
}

func (c *testCluster) close() {
	for _, id := range c.ids {
		c.kill(id)
	}
}

func (c *testCluster) node(id cluster.NodeID) *Node { return c.nodes[id].node }

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if c, ok := dumpers[t]; ok {
				t.Log(c.dump())
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holder returns the one running node that holds res, if any.
func (c *testCluster) holder(res string) (cluster.NodeID, ownership.Epoch, int) {
	var id cluster.NodeID
	var e ownership.Epoch
	count := 0
	for _, x := range c.ids {
		if n := c.nodes[x].node; n != nil {
			if ep, ok := n.Held(res); ok {
				id, e = x, ep
				count++
			}
		}
	}
	return id, e, count
}

func (c *testCluster) waitHolder(res string, timeout time.Duration, ok func(cluster.NodeID) bool) (cluster.NodeID, ownership.Epoch) {
	c.t.Helper()
	var id cluster.NodeID
	var e ownership.Epoch
	waitFor(c.t, timeout, "a holder of "+res, func() bool {
		var n int
		id, e, n = c.holder(res)
		return n == 1 && (ok == nil || ok(id))
	})
	return id, e
}

func (c *testCluster) anyNode() *Node {
	for _, id := range c.ids {
		if n := c.nodes[id].node; n != nil {
			return n
		}
	}
	return nil
}

func (c *testCluster) ensure(spec ownership.Spec) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.anyNode().Ensure(ctx, spec); err != nil {
		c.t.Fatalf("ensure %s: %v", spec.Name, err)
	}
}

func (c *testCluster) leader() cluster.NodeID {
	for _, id := range c.ids {
		if n := c.nodes[id].node; n != nil && n.raft.State() == raft.Leader {
			return id
		}
	}
	return ""
}

// checkGoroutines fails when goroutines outlive the test.
func checkGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutine leak: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// downstream is the fencing checker: it accepts an action only when its
// epoch is not below the highest seen for the resource, and keeps every
// Held observation to check that no two nodes held one resource at once.
type downstream struct {
	mu       sync.Mutex
	maxEpoch map[string]ownership.Epoch
	accepted map[string]int
	rejected int
	obs      map[string][]observation
}

type observation struct {
	node       cluster.NodeID
	epoch      ownership.Epoch
	start, end time.Time // real time just before and after Held returned true
}

func newDownstream() *downstream {
	return &downstream{maxEpoch: map[string]ownership.Epoch{}, accepted: map[string]int{}, obs: map[string][]observation{}}
}

func (d *downstream) observe(res string, o observation) {
	d.mu.Lock()
	d.obs[res] = append(d.obs[res], o)
	d.mu.Unlock()
}

// act is the fenced action.
func (d *downstream) act(res string, e ownership.Epoch) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e < d.maxEpoch[res] {
		d.rejected++
		return false
	}
	d.maxEpoch[res] = e
	d.accepted[res]++
	return true
}

// violations lists overlapping ownership: node A observed holding epoch e1
// after node B had been observed holding a larger epoch e2 (A's holding
// then spans a moment B held too), and an epoch held by two nodes.
func (d *downstream) violations() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for res, obs := range d.obs {
		type span struct {
			node     cluster.NodeID
			maxStart time.Time
			minEnd   time.Time
		}
		spans := map[ownership.Epoch]*span{}
		for _, o := range obs {
			s := spans[o.epoch]
			if s == nil {
				spans[o.epoch] = &span{node: o.node, maxStart: o.start, minEnd: o.end}
				continue
			}
			if s.node != o.node {
				out = append(out, fmt.Sprintf("%s: epoch %d held by %s and %s", res, o.epoch, s.node, o.node))
			}
			if o.start.After(s.maxStart) {
				s.maxStart = o.start
			}
			if o.end.Before(s.minEnd) {
				s.minEnd = o.end
			}
		}
		epochs := make([]ownership.Epoch, 0, len(spans))
		for e := range spans {
			epochs = append(epochs, e)
		}
		sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
		// Walk from the newest epoch down, keeping the earliest end of any
		// newer epoch held by another node.
		type firstEnd struct {
			at   time.Time
			node cluster.NodeID
			e    ownership.Epoch
		}
		var later []firstEnd
		for i := len(epochs) - 1; i >= 0; i-- {
			s := spans[epochs[i]]
			for _, l := range later {
				if l.node != s.node && s.maxStart.After(l.at) {
					out = append(out, fmt.Sprintf("%s: %s held epoch %d at %s, after %s held epoch %d at %s",
						res, s.node, epochs[i], s.maxStart.Format("15:04:05.000000"), l.node, l.e, l.at.Format("15:04:05.000000")))
				}
			}
			later = append(later, firstEnd{at: s.minEnd, node: s.node, e: epochs[i]})
		}
	}
	sort.Strings(out)
	return out
}

// actors run one goroutine per (node, resource) that checks Held and acts,
// as a block would.
type actors struct {
	wg   sync.WaitGroup
	quit chan struct{}
}

func startActors(c *testCluster, ds *downstream, resources []string, maxPause time.Duration, seed int64) *actors {
	a := &actors{quit: make(chan struct{})}
	for i, id := range c.ids {
		for j, res := range resources {
			a.wg.Add(1)
			go func(id cluster.NodeID, res string, k int64) {
				defer a.wg.Done()
				rnd := rand.New(rand.NewSource(seed + k))
				for {
					select {
					case <-a.quit:
						return
					case <-time.After(time.Millisecond):
					}
					n := c.nodeSafe(id)
					if n == nil {
						continue
					}
					start := time.Now()
					e, ok := n.Held(res)
					end := time.Now()
					if !ok {
						continue
					}
					ds.observe(res, observation{node: id, epoch: e, start: start, end: end})
					switch {
					case maxPause > 0 && rnd.Intn(20) == 0:
						time.Sleep(time.Duration(rnd.Int63n(int64(maxPause))))
					case maxPause > 0 && rnd.Intn(400) == 0:
						// A pause far beyond P breaks the stated
						// assumption: only the downstream's epoch
						// check stops this stale action.
						time.Sleep(20 * maxPause)
					}
					ds.act(res, e)
				}
			}(id, res, int64(i*100+j))
		}
	}
	return a
}

func (a *actors) stop() {
	close(a.quit)
	a.wg.Wait()
}

// nodeSafe reads a node pointer under the cluster lock: actors run while
// the schedule kills and restarts nodes.
func (c *testCluster) nodeSafe(id cluster.NodeID) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id].node
}

func fmtIDs(ids []cluster.NodeID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ",")
}
