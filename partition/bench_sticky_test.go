package partition_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
)

var stickyKeys = flag.Int("sticky.keys", 10000, "tenants of BenchmarkStickyReplace")

// BenchmarkStickyReplace measures what re-placing sticky tenants costs
// when a fourth node joins a 3-node farm (raftowner over clustertest's
// network, the farm timing of the other cluster tests):
//
//   - writes/key: Ensures the four replacers issued, over the tenants (1 is
//     the least: every list changes when a node joins).
//
//   - replace÷add: the time from the join being committed to every list
//     being the new ranking, over the time n1 took to Add the same
//     tenants one by one (one Ensure each, the baseline of the same run).
//
//     go test -run='^$' -bench=StickyReplace -benchtime=1x ./partition/ -args -sticky.keys=10000
func BenchmarkStickyReplace(b *testing.B) {
	for range b.N {
		stickyReplaceOnce(b, *stickyKeys)
	}
}

func stickyReplaceOnce(b *testing.B, n int) {
	cfg := partition.Config{Failback: partition.FailbackSticky}
	f := newFarm(b, cfg, nil, []cluster.NodeID{"n1", "n2", "n3"})
	defer f.stop("n4") // before the farm's cleanup
	ownershiptest.WaitFor(b, wait, "n1 to see the whole membership", func() bool {
		pl, err := f.part("n1").Placement()
		return err == nil && len(pl.Members()) == 3
	})
	keys := tenants(n)
	ctx := context.Background()
	start := time.Now()
	for _, k := range keys {
		if err := f.part("n1").Add(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	add := time.Since(start)

	f.c.Add("n4", raftowner.RoleNode, "n1")
	ownershiptest.WaitFor(b, time.Minute, "n4 in n1's membership", func() bool {
		return len(partition.Committed(f.c.Node("n1")).Members()) == 4
	})
	joined := time.Now()
	f.start("n4", false)
	stats := func() (writes uint64) {
		for _, id := range []cluster.NodeID{"n1", "n2", "n3", "n4"} {
			s := f.part(id).ReplaceStats()
			writes += s.Ensures
			b.Logf("%v %s: %+v", time.Since(joined).Round(time.Second), id, s)
		}
		return writes
	}
	logged := time.Now()
	for {
		_, why := listsMatch(f.c.Node("n1"), keys, 4)
		if why == "" {
			break
		}
		if time.Since(logged) > 30*time.Second {
			b.Logf("waiting: %s", why)
			stats()
			logged = time.Now()
		}
		if time.Since(joined) > 30*time.Minute {
			b.Fatal("lists did not follow the join")
		}
		time.Sleep(200 * time.Millisecond)
	}
	replace := time.Since(joined)
	writes := stats()
	b.ReportMetric(float64(writes)/float64(n), "writes/key")
	b.ReportMetric(replace.Seconds()/add.Seconds(), "replace÷add")
	b.ReportMetric(add.Seconds()*1e3/float64(n), "add-ms/key")
	b.ReportMetric(replace.Seconds(), "replace-s")
}
