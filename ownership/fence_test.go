package ownership

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestFence(t *testing.T) {
	var f Fence
	for _, step := range []struct {
		res  string
		e    Epoch
		want error
	}{
		{"vip/a", 3, nil}, {"vip/a", 3, nil}, {"vip/a", 2, ErrStaleEpoch}, {"vip/b", 1, nil}, {"vip/a", 7, nil}, {"vip/a", 3, ErrStaleEpoch},
	} {
		if err := f.Admit(step.res, step.e); !errors.Is(err, step.want) || (step.want == nil && err != nil) {
			t.Fatalf("Admit(%s, %d) = %v, want %v", step.res, step.e, err, step.want)
		}
	}
	// Concurrent admits: the largest epoch wins and no smaller one passes
	// after it.
	var g Fence
	var wg sync.WaitGroup
	for i := 1; i <= 50; i++ {
		wg.Add(1)
		go func(e Epoch) { defer wg.Done(); _ = g.Admit("r", e) }(Epoch(i))
	}
	wg.Wait()
	if err := g.Admit("r", 49); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("after 50, Admit(49) = %v", err)
	}
}

func TestCheck(t *testing.T) {
	s := NewSingle("n1")
	defer s.Close()
	if _, err := Check(s, "vip/a"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Check of an unheld resource = %v", err)
	}
	_ = s.Ensure(context.Background(), Spec{Name: "vip/a"})
	if e, err := Check(s, "vip/a"); err != nil || e != 1 {
		t.Fatalf("Check = %d, %v", e, err)
	}
}

func ExampleFence() {
	var downstream Fence
	fmt.Println(downstream.Admit("vip/198.51.100.100", 4)) // owner at epoch 4
	fmt.Println(downstream.Admit("vip/198.51.100.100", 5)) // its successor
	fmt.Println(downstream.Admit("vip/198.51.100.100", 4)) // the deposed owner, late
	// Output:
	// <nil>
	// <nil>
	// ownership: stale epoch: vip/198.51.100.100 at epoch 4, already saw 5
}
