package partition_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/partition"
)

// actives returns n active members n01..nNN of weight 1.
func actives(n int) []partition.Member {
	ms := make([]partition.Member, n)
	for i := range ms {
		ms[i] = partition.Member{ID: cluster.NodeID(fmt.Sprintf("n%02d", i+1))}
	}
	return ms
}

// tenants returns n tenant keys shaped like SIP domains.
func tenants(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("tenant%05d.example.com", i)
	}
	return ks
}

func build(t testing.TB, ms []partition.Member, keys []string, o partition.Options) *partition.Placement {
	t.Helper()
	p, err := partition.Build(ms, keys, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// owners maps each key to its owner.
func owners(t testing.TB, p *partition.Placement, keys []string) map[string]cluster.NodeID {
	t.Helper()
	m := make(map[string]cluster.NodeID, len(keys))
	for _, k := range keys {
		o, ok := p.Owner(k)
		if !ok {
			t.Fatalf("no owner for %q", k)
		}
		m[k] = o
	}
	return m
}

// moved counts the keys whose owner differs.
func moved(a, b map[string]cluster.NodeID) int {
	n := 0
	for k, o := range a {
		if b[k] != o {
			n++
		}
	}
	return n
}

// maxOverMean is the largest load over the mean load of the active nodes.
func maxOverMean(own map[string]cluster.NodeID, nodes int) float64 {
	loads := map[cluster.NodeID]int{}
	for _, o := range own {
		loads[o]++
	}
	mx := 0
	for _, l := range loads {
		mx = max(mx, l)
	}
	return float64(mx) / (float64(len(own)) / float64(nodes))
}

// seeded returns a random source and logs its seed; PARTITION_SEED=<seed>
// replays a failure.
func seeded(t testing.TB) (*rand.Rand, uint64) {
	seed := rand.Uint64()
	if env := os.Getenv("PARTITION_SEED"); env != "" {
		var err error
		if seed, err = strconv.ParseUint(env, 10, 64); err != nil {
			t.Fatalf("PARTITION_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with PARTITION_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, 0)), seed
}

// singleNode returns a Partitioner over ownership.Single: one node, n01,
// that holds every key it adds. Both close when the test ends, the
// Partitioner first.
func singleNode(t *testing.T) *partition.Partitioner {
	m := ownership.NewSingle("n01")
	p, err := partition.New(m, partition.MemberSourceFunc(func() []partition.Member { return actives(1) }), partition.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		m.Close()
	})
	return p
}
