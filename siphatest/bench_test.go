package siphatest_test

import (
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/siphatest"
)

// BenchmarkNewCluster measures how long a 3-node cluster takes to come up
// ready and to stop, against ownershiptest's Raft-only harness as the
// baseline. Each iteration starts and stops one cluster.
//
//	go test -run='^$' -bench=NewCluster -benchtime=5x ./siphatest
func BenchmarkNewCluster(b *testing.B) {
	b.Run("baseline-ownershiptest", func(b *testing.B) {
		for b.Loop() {
			c := ownershiptest.New(b, ownershiptest.Config{Nodes: []cluster.NodeID{"n1", "n2", "n3"}})
			c.Close()
		}
	})
	for _, bc := range []struct {
		name string
		opts siphatest.Options
	}{
		{"ownership-only", siphatest.Options{Disable: siphatest.AllBlocks}},
		{"all-blocks", siphatest.Options{}},
		{"all-blocks-loopback", siphatest.Options{Loopback: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				tb := siphatest.NewStandalone(b.Name(), nil)
				siphatest.NewCluster(tb, 3, bc.opts)
				if err := tb.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
