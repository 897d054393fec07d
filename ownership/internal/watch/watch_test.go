package watch

import (
	"sync"
	"testing"
)

func TestOrderAndCloseDrains(t *testing.T) {
	var h Hub[int]
	var mu sync.Mutex
	var got []int
	block := make(chan struct{})
	h.Add(func(v int) bool { return v%2 == 0 }, func(v int) {
		if v == 0 {
			<-block
		}
		mu.Lock()
		got = append(got, v)
		mu.Unlock()
	}, []int{0})
	h.Publish(1, 2, 3, 4)
	h.Publish(6)
	close(block)
	h.Close() // delivers 2, 4, 6 queued behind 0
	if len(got) != 4 || got[0] != 0 || got[1] != 2 || got[2] != 4 || got[3] != 6 {
		t.Fatalf("got %v, want [0 2 4 6]", got)
	}
	stop := h.Add(func(int) bool { return true }, func(int) { t.Error("called after Close") }, []int{1})
	stop()
}

func TestNoCallAfterStop(t *testing.T) {
	var h Hub[int]
	defer h.Close()
	var mu sync.Mutex
	calls := 0
	started := make(chan struct{})
	release := make(chan struct{})
	stop := h.Add(func(int) bool { return true }, func(int) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			close(started)
			<-release
		}
	}, nil)
	h.Publish(1, 2, 3)
	<-started
	close(release)
	stop() // waits for a running call
	mu.Lock()
	after := calls
	mu.Unlock()
	h.Publish(4, 5)
	h.Close()
	mu.Lock()
	defer mu.Unlock()
	if calls != after {
		t.Fatalf("fn ran %d more times after stop returned", calls-after)
	}
}
