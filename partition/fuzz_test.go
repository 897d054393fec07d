package partition_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/partition"
)

// FuzzBuild feeds arbitrary memberships, keys and load factors to Build:
// it must reject bad input with an error, never panic, and place every key
// the same way whatever the order of its inputs.
func FuzzBuild(f *testing.F) {
	f.Add("n1,n2,n3,*s1", "acme,globex,initech", 0.0, "x")
	f.Add("a,b", "k1,k2,k3,k4,k5,k6", 1.05, "k3")
	f.Add("a,a", "k", 2.0, "")
	f.Add(",*", "", 0.5, "z")
	f.Add("*s1,*s2", "t", 1.0, "t")
	f.Fuzz(func(t *testing.T, members, keys string, c float64, probe string) {
		var ms []partition.Member
		for _, id := range strings.Split(members, ",") {
			m := partition.Member{ID: cluster.NodeID(strings.TrimPrefix(id, "*"))}
			if strings.HasPrefix(id, "*") {
				m.Role = partition.Spare
			}
			ms = append(ms, m)
		}
		ks := strings.Split(keys, ",")
		p, err := partition.Build(ms, ks, partition.Options{LoadFactor: c})
		if err != nil {
			return
		}
		slices.Reverse(ms)
		slices.Reverse(ks)
		q, err := partition.Build(ms, ks, partition.Options{LoadFactor: c})
		if err != nil {
			t.Fatalf("accepted in one order, rejected in another: %v", err)
		}
		for _, k := range append(ks, probe) {
			a, b := p.Rank(k), q.Rank(k)
			if !slices.Equal(a, b) || len(a) != len(ms) {
				t.Fatalf("%q ranked %v and %v over %d members", k, a, b, len(ms))
			}
			o, ok := p.Owner(k)
			if ok != (len(a) > 0) || ok && o != a[0] {
				t.Fatalf("%q: owner %q %v, ranking %v", k, o, ok, a)
			}
		}
	})
}
