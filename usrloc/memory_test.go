package usrloc

import (
	"runtime"
	"testing"

	"github.com/sipha/sipha/cluster/clustertest"
)

// TestHeapPerBindingBudget guards the memory layout: 50k realistic
// bindings (the field sizes of BenchmarkHeapPerBinding) must cost at most
// 600 bytes of heap each, measured with runtime.MemStats after GC.
func TestHeapPerBindingBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 50k bindings")
	}
	const n = 50_000
	before := heapInUse()
	s, err := New(Config{Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, s, n)
	after := heapInUse()
	per := float64(after-before) / n
	runtime.KeepAlive(s)
	t.Logf("%.0f heap bytes per binding at %d bindings", per, n)
	if per > 600 {
		t.Fatalf("%.0f heap bytes per binding, budget 600", per)
	}
}
