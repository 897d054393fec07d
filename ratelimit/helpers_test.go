package ratelimit_test

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ratelimit"
)

var testSecret = []byte("ratelimit-test-secret-0123456789")

// node is one cluster member under test: its transport and its limiter.
type node struct {
	id cluster.NodeID
	tr *cluster.TCP
	rl *ratelimit.Limiter
	// mute, when set, silences the limiter's messages (loopback tests).
	mute *atomic.Bool
}

// memNode starts node i of ids on its host of nw, with a limiter of cfg.
func memNode(t *testing.T, nw *clustertest.Network, ids []cluster.NodeID, i int, cfg ratelimit.Config) *node {
	t.Helper()
	tr := clustertest.StartTCP(t, nw, ids, i, func(c *cluster.Config) { c.Secret = testSecret })
	host := nw.Host(string(ids[i]))
	cfg.Transport, cfg.Now, cfg.Logger = tr, host.Now, clustertest.Logger(t)
	rl, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{id: ids[i], tr: tr, rl: rl}
	t.Cleanup(n.close)
	return n
}

func (n *node) close() { n.rl.Close(); n.tr.Close() }

// memCluster starts len(names) nodes on nw and waits until they see each
// other up.
func memCluster(t *testing.T, nw *clustertest.Network, cfg ratelimit.Config, names ...string) []*node {
	t.Helper()
	ids := make([]cluster.NodeID, len(names))
	for i, n := range names {
		ids[i] = cluster.NodeID(n)
	}
	nodes := make([]*node, len(names))
	trs := make([]cluster.Transport, len(names))
	for i := range names {
		nodes[i] = memNode(t, nw, ids, i, cfg)
		trs[i] = nodes[i].tr
	}
	clustertest.WaitUp(t, trs)
	return nodes
}

// load offers calls to each node's limiter at a rate the test sets, from
// one goroutine that wakes every step, and counts the admitted calls at one
// sink in 100 ms buckets per node.
type load struct {
	pipe  string
	nodes []*node
	step  time.Duration
	start time.Time

	mu      sync.Mutex
	rates   []float64 // offered calls/s per node; 0 stops a node
	owed    []float64
	buckets [][]int      // [node][100 ms bucket] admitted
	starved map[int]bool // 100 ms buckets in which the generator itself stalled
	rng     *rand.Rand   // when set, arrivals are Poisson instead of evenly spaced
	quit    chan struct{}
	done    chan struct{}
}

const bucket = 100 * time.Millisecond

// starvedGap is a stall of the load generator (the process descheduled on
// a loaded machine) after which its calls no longer arrive as offered.
const starvedGap = 25 * time.Millisecond

func startLoad(pipe string, nodes []*node, rates ...float64) *load {
	return startLoadSeeded(pipe, nodes, nil, rates...)
}

// startLoadSeeded offers Poisson arrivals drawn from rng (nil: evenly
// spaced calls).
func startLoadSeeded(pipe string, nodes []*node, rng *rand.Rand, rates ...float64) *load {
	ld := &load{pipe: pipe, nodes: nodes, step: time.Millisecond, start: time.Now(),
		rates: rates, owed: make([]float64, len(nodes)), buckets: make([][]int, len(nodes)),
		rng: rng, starved: map[int]bool{}, quit: make(chan struct{}), done: make(chan struct{})}
	go ld.run()
	return ld
}

// poisson draws a Poisson count of mean lambda (Knuth; lambda is small).
func poisson(rng *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (ld *load) run() {
	defer close(ld.done)
	last := time.Now()
	tick := time.NewTicker(ld.step)
	defer tick.Stop()
	for {
		select {
		case <-ld.quit:
			return
		case <-tick.C:
		}
		now := time.Now()
		dt := now.Sub(last).Seconds()
		b := int(now.Sub(ld.start) / bucket)
		ld.mu.Lock()
		if now.Sub(last) > starvedGap {
			// The calls of the gap arrive at once now: not the offered
			// load the windows are meant to measure.
			for sb := int(last.Sub(ld.start) / bucket); sb <= b; sb++ {
				ld.starved[sb] = true
			}
		}
		last = now
		for i, n := range ld.nodes {
			if ld.rng != nil {
				ld.owed[i] += float64(poisson(ld.rng, ld.rates[i]*dt))
			} else {
				ld.owed[i] += ld.rates[i] * dt
			}
			for ld.owed[i] >= 1 {
				ld.owed[i]--
				if n.rl.Allow(ld.pipe) {
					for len(ld.buckets[i]) <= b {
						ld.buckets[i] = append(ld.buckets[i], 0)
					}
					ld.buckets[i][b]++
				}
			}
		}
		ld.mu.Unlock()
	}
}

func (ld *load) stop() { close(ld.quit); <-ld.done }

func (ld *load) set(rates ...float64) {
	ld.mu.Lock()
	copy(ld.rates, rates)
	ld.mu.Unlock()
}

// at is the time since the load started.
func (ld *load) at() time.Duration { return time.Since(ld.start) }

// windows returns the admitted rate (calls/s) of the given nodes (all when
// none given) over the 1 s windows starting every 100 ms in [from, to-1s].
func (ld *load) windows(from, to time.Duration, which ...int) []float64 {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if len(which) == 0 {
		for i := range ld.nodes {
			which = append(which, i)
		}
	}
	per := int(time.Second / bucket)
	var out []float64
	for s := int(from / bucket); s+per <= int(to/bucket); s++ {
		sum := 0
		for _, i := range which {
			for b := s; b < s+per && b < len(ld.buckets[i]); b++ {
				sum += ld.buckets[i][b]
			}
		}
		out = append(out, float64(sum))
	}
	return out
}

// steadyWindows is windows without the 1 s windows that contain a bucket
// in which the generator stalled; it returns how many it left out.
func (ld *load) steadyWindows(from, to time.Duration, which ...int) ([]float64, int) {
	all := ld.windows(from, to, which...)
	ld.mu.Lock()
	defer ld.mu.Unlock()
	per := int(time.Second / bucket)
	var out []float64
	for i, w := range all {
		s, ok := int(from/bucket)+i, true
		for b := s; b < s+per; b++ {
			ok = ok && !ld.starved[b]
		}
		if ok {
			out = append(out, w)
		}
	}
	return out, len(all) - len(out)
}

// band is the summary of a set of windows against a limit.
type band struct {
	n             int
	min, p1, p99  float64
	max, inBandPc float64
}

func summarize(ws []float64, limit float64) band {
	if len(ws) == 0 {
		return band{}
	}
	s := slices.Clone(ws)
	slices.Sort(s)
	q := func(f float64) float64 { return s[int(math.Round(f*float64(len(s)-1)))] / limit }
	in := 0
	for _, w := range s {
		if w >= 0.95*limit && w <= 1.05*limit {
			in++
		}
	}
	return band{n: len(s), min: s[0] / limit, p1: q(0.01), p99: q(0.99), max: s[len(s)-1] / limit,
		inBandPc: 100 * float64(in) / float64(len(s))}
}

// checkBand fails t unless the windows are within [0.95, 1.05] × limit at
// p1/p99 and never above 1.10 × limit.
func checkBand(t *testing.T, what string, ws []float64, limit float64) band {
	t.Helper()
	return checkBandTol(t, what, ws, limit, 0.05, 1.10)
}

// checkBandTol is checkBand with the band ±tol and the ceiling given.
func checkBandTol(t *testing.T, what string, ws []float64, limit, tol, ceiling float64) band {
	t.Helper()
	b := summarize(ws, limit)
	t.Logf("%s: %d windows, min %.3f p1 %.3f p99 %.3f max %.3f ×limit, %.1f%% in ±5%%", what, b.n, b.min, b.p1, b.p99, b.max, b.inBandPc)
	if b.n == 0 {
		t.Fatalf("%s: no windows", what)
	}
	if b.p1 < 1-tol || b.p99 > 1+tol || b.max > ceiling {
		t.Errorf("%s: out of band: p1 %.3f p99 %.3f max %.3f (want ≥%.2f, ≤%.2f, max ≤%.2f)", what, b.p1, b.p99, b.max, 1-tol, 1+tol, ceiling)
	}
	return b
}

// settled is how long after event the admitted rate of the given nodes
// settles in the band: the earliest delay d such that every 1 s window
// starting at event+d or later (and ending by to) is within ±5 % of limit.
func (ld *load) settled(event, to time.Duration, limit float64, which ...int) time.Duration {
	ws := ld.windows(event, to, which...)
	first := len(ws)
	for i := len(ws) - 1; i >= 0; i-- {
		if ws[i] < 0.95*limit || ws[i] > 1.05*limit {
			break
		}
		first = i
	}
	return time.Duration(first) * bucket
}

// testSeed is the seed of a randomized test: def, or SIPHA_SEED when set
// (to try others, or replay one from a log).
func testSeed(t *testing.T, def uint64) uint64 {
	seed := def
	if v := os.Getenv("SIPHA_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SIPHA_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with SIPHA_SEED=%d)", seed, seed)
	return seed
}
