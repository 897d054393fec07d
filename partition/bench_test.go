package partition_test

import (
	"testing"

	"github.com/sipha/sipha/partition"
)

func BenchmarkOwner16(b *testing.B) {
	keys := tenants(10000)
	for _, c := range []struct {
		name string
		keys []string
		opts partition.Options
	}{
		{"hashed", nil, partition.Options{}},
		{"table", keys, partition.Options{}},
		{"table-bounded", keys, partition.Options{LoadFactor: 1.1}},
	} {
		p := build(b, actives(16), c.keys, c.opts)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Owner(keys[i%len(keys)])
				i++
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					p.Owner(keys[i%len(keys)])
					i++
				}
			})
		})
	}
}
