package ownershiptest

import (
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// History is a fenced downstream plus a recorder. Act accepts an action
// only when its epoch is not below the highest already accepted for the
// resource (what a real downstream does with the fencing token); Observe
// records every moment a node found itself holding a resource, so
// Violations can tell whether two nodes held one at once.
type History struct {
	fence    ownership.Fence
	mu       sync.Mutex
	accepted map[string]int
	rejected int
	obs      map[string][]Observation
}

// Observation is one Held call that returned true.
type Observation struct {
	Node  cluster.NodeID
	Epoch ownership.Epoch
	// Start and End are the true time just before and just after the Held
	// call, so the node held the resource at some instant between them.
	Start, End time.Time
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{accepted: map[string]int{}, obs: map[string][]Observation{}}
}

// Observe records a Held observation.
func (h *History) Observe(res string, o Observation) {
	h.mu.Lock()
	h.obs[res] = append(h.obs[res], o)
	h.mu.Unlock()
}

// Act is the fenced action: it reports whether the downstream accepted it.
func (h *History) Act(res string, e ownership.Epoch) bool {
	err := h.fence.Admit(res, e)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.rejected++
		return false
	}
	h.accepted[res]++
	return true
}

// Accepted counts the accepted actions on res.
func (h *History) Accepted(res string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accepted[res]
}

// Rejected counts actions rejected for a stale epoch.
func (h *History) Rejected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rejected
}

// Epochs counts the distinct epochs observed held, over all resources.
func (h *History) Epochs() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, obs := range h.obs {
		seen := map[ownership.Epoch]bool{}
		for _, o := range obs {
			seen[o.Epoch] = true
		}
		n += len(seen)
	}
	return n
}

// Violations lists every breach of single ownership: an epoch held by two
// nodes, or a node observed holding epoch e1 after another node had been
// observed holding a larger e2 (the first node's holding then spans a
// moment the second held too).
func (h *History) Violations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for res, obs := range h.obs {
		out = append(out, violations(res, obs)...)
	}
	sort.Strings(out)
	return out
}

func violations(res string, obs []Observation) []string {
	type span struct {
		node             cluster.NodeID
		lastStart, first time.Time // latest Start and earliest End
	}
	var out []string
	spans := map[ownership.Epoch]*span{}
	for _, o := range obs {
		s := spans[o.Epoch]
		if s == nil {
			spans[o.Epoch] = &span{node: o.Node, lastStart: o.Start, first: o.End}
			continue
		}
		if s.node != o.Node {
			out = append(out, fmt.Sprintf("%s: epoch %d held by %s and %s", res, o.Epoch, s.node, o.Node))
		}
		if o.Start.After(s.lastStart) {
			s.lastStart = o.Start
		}
		if o.End.Before(s.first) {
			s.first = o.End
		}
	}
	epochs := make([]ownership.Epoch, 0, len(spans))
	for e := range spans {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	// From the newest epoch down, compare each epoch's last observation
	// with the first observation of every newer epoch of another node.
	for i := len(epochs) - 1; i >= 0; i-- {
		s := spans[epochs[i]]
		for _, e2 := range epochs[i+1:] {
			l := spans[e2]
			if l.node != s.node && s.lastStart.After(l.first) {
				out = append(out, fmt.Sprintf("%s: %s held epoch %d at %s, after %s held epoch %d at %s", res,
					s.node, epochs[i], s.lastStart.Format("15:04:05.000000"), l.node, e2, l.first.Format("15:04:05.000000")))
			}
		}
	}
	return out
}

// Actors act as owner the way a block does: one goroutine per (node,
// resource) checks Held every millisecond and, when it holds, records the
// observation and acts through the History with the epoch.
type Actors struct {
	wg   sync.WaitGroup
	quit chan struct{}
	once sync.Once
}

// StartActors starts the actors. One action in 20 pauses up to maxPause
// between Held and Act (within the assumption P), and one in 400 pauses
// 20×maxPause (beyond it: only the epoch check stops that action).
func StartActors(c *Cluster, h *History, resources []string, maxPause time.Duration, seed int64) *Actors {
	a := &Actors{quit: make(chan struct{})}
	for i, id := range c.IDs() {
		for j, res := range resources {
			a.wg.Add(1)
			go a.run(c, h, id, res, maxPause, seed+int64(i*100+j))
		}
	}
	return a
}

func (a *Actors) run(c *Cluster, h *History, id cluster.NodeID, res string, maxPause time.Duration, seed int64) {
	defer a.wg.Done()
	rnd := rand.New(rand.NewSource(seed))
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-a.quit:
			return
		case <-t.C:
		}
		n := c.Node(id)
		if n == nil {
			continue
		}
		start := time.Now()
		e, ok := n.Held(res)
		end := time.Now()
		if !ok {
			continue
		}
		h.Observe(res, Observation{Node: id, Epoch: e, Start: start, End: end})
		switch {
		case maxPause > 0 && rnd.Intn(20) == 0:
			time.Sleep(time.Duration(rnd.Int63n(int64(maxPause))))
		case maxPause > 0 && rnd.Intn(400) == 0:
			time.Sleep(20 * maxPause)
		}
		h.Act(res, e)
	}
}

// Stop stops the actors and waits for them. It is idempotent.
func (a *Actors) Stop() {
	a.once.Do(func() { close(a.quit) })
	a.wg.Wait()
}
