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

func TestStopDoesNotDrain(t *testing.T) {
	var h Hub[int]
	defer h.Close()
	started := make(chan struct{})
	release := make(chan struct{})
	calls := 0
	stop := h.Add(func(int) bool { return true }, func(int) {
		calls++
		if calls == 1 {
			close(started)
			<-release
		}
	}, nil)
	h.Publish(1, 2, 3)
	<-started
	go close(release)
	stop() // waits for the running call, drops 2 and 3
	if calls != 1 {
		t.Fatalf("fn ran %d times after stop, want 1", calls)
	}
}
