package partition_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/partition"
)

func ids(ms []partition.Member) []cluster.NodeID {
	out := make([]cluster.NodeID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// BenchmarkOwner measures one owner lookup over 16 nodes and 10k committed
// tenants: placement's precomputed table (plain and bounded), its hashed
// path for a key outside the table (after a table miss, and with no table
// at all), and the two baselines.
func BenchmarkOwner(b *testing.B) {
	keys := tenants(10000)
	ms := actives(16)
	other := make([]string, len(keys))
	for i := range other {
		other[i] = fmt.Sprintf("unlisted%05d.example.net", i)
	}
	plain := build(b, ms, keys, partition.Options{})
	bare := build(b, ms, nil, partition.Options{})
	bounded := build(b, ms, keys, partition.Options{LoadFactor: 1.1})
	rg := newRing(ids(ms), 160)
	mn := modN(ids(ms))
	cases := []struct {
		name string
		keys []string
		get  func(string) cluster.NodeID
	}{
		{"table", keys, func(k string) cluster.NodeID { o, _ := plain.Owner(k); return o }},
		{"table-bounded", keys, func(k string) cluster.NodeID { o, _ := bounded.Owner(k); return o }},
		{"hashed", other, func(k string) cluster.NodeID { o, _ := plain.Owner(k); return o }},
		{"hashed-no-table", keys, func(k string) cluster.NodeID { o, _ := bare.Owner(k); return o }},
		{"ring160", keys, rg.get},
		{"modN", keys, mn.get},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.get(c.keys[i%len(c.keys)])
				i++
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					c.get(c.keys[i%len(c.keys)])
					i++
				}
			})
		})
	}
}

// BenchmarkBuild measures rebuilding the placement of 10k tenants on 16
// nodes, done once per membership or key-set change.
func BenchmarkBuild(b *testing.B) {
	keys := tenants(10000)
	for _, o := range []partition.Options{{}, {LoadFactor: 1.1}} {
		b.Run(fmt.Sprintf("c=%v", o.LoadFactor), func(b *testing.B) {
			for b.Loop() {
				build(b, actives(16), keys, o)
			}
		})
	}
}

// placer is a placement scheme under test: it maps keys to owners on a
// given set of active nodes.
type placer struct {
	name  string
	owner func(tb testing.TB, ms []partition.Member, keys []string) map[string]cluster.NodeID
}

var placers = []placer{
	{"rendezvous", func(tb testing.TB, ms []partition.Member, keys []string) map[string]cluster.NodeID {
		return owners(tb, build(tb, ms, keys, partition.Options{}), keys)
	}},
	{"rendezvous-c1.10", func(tb testing.TB, ms []partition.Member, keys []string) map[string]cluster.NodeID {
		return owners(tb, build(tb, ms, keys, partition.Options{LoadFactor: 1.1}), keys)
	}},
	{"rendezvous-c1.05", func(tb testing.TB, ms []partition.Member, keys []string) map[string]cluster.NodeID {
		return owners(tb, build(tb, ms, keys, partition.Options{LoadFactor: 1.05}), keys)
	}},
	{"ring160", func(_ testing.TB, ms []partition.Member, keys []string) map[string]cluster.NodeID {
		r := newRing(ids(ms), 160)
		out := map[string]cluster.NodeID{}
		for _, k := range keys {
			out[k] = r.get(k)
		}
		return out
	}},
	{"modN", func(_ testing.TB, ms []partition.Member, keys []string) map[string]cluster.NodeID {
		m := modN(ids(ms))
		out := map[string]cluster.NodeID{}
		for _, k := range keys {
			out[k] = m.get(k)
		}
		return out
	}},
}

// BenchmarkQuality reports, for 10k tenants on n nodes, the balance
// (max/mean load) and the keys moved when one node is added or removed,
// as a ratio to the ideal K/(n+1) and K/n; "foreign" counts keys that
// moved on a removal though their owner stayed. Removal is averaged over
// every node (remove-moved) and taken at its worst node (remove-worst). The time per op is that of computing all of it.
func BenchmarkQuality(b *testing.B) {
	keys := tenants(10000)
	for _, n := range []int{3, 4, 8, 9, 16} {
		for _, pl := range placers {
			b.Run(fmt.Sprintf("n=%d/%s", n, pl.name), func(b *testing.B) {
				var bal, add, rem, worst, foreign float64
				for b.Loop() {
					ms := actives(n)
					base := pl.owner(b, ms, keys)
					bal = maxOverMean(base, n)
					grown := pl.owner(b, append(slices.Clone(ms), partition.Member{ID: "new"}), keys)
					add = float64(moved(base, grown)) / (float64(len(keys)) / float64(n+1))
					total, alien, most := 0, 0, 0
					for gone := range ms {
						after := pl.owner(b, slices.Delete(slices.Clone(ms), gone, gone+1), keys)
						m := 0
						for k, o := range base {
							if after[k] != o {
								m++
								if o != ms[gone].ID {
									alien++
								}
							}
						}
						total += m
						most = max(most, m)
					}
					worst = float64(most) / (float64(len(keys)) / float64(n))
					rem = float64(total) / float64(n) / (float64(len(keys)) / float64(n))
					foreign = float64(alien) / float64(n)
				}
				b.ReportMetric(bal, "max/mean")
				b.ReportMetric(add, "add-moved/ideal")
				b.ReportMetric(rem, "remove-moved/ideal")
				b.ReportMetric(worst, "remove-worst/ideal")
				b.ReportMetric(foreign, "foreign-moved")
			})
		}
	}
}
