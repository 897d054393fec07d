package watch

import (
	"testing"
)

// TestStopAfterClose: a block may stop its watch after the manager closed
// (its own Close runs later); that must not panic, and stop stays
// idempotent.
func TestStopAfterClose(t *testing.T) {
	var h Hub[int]
	got := make(chan int, 1)
	stop := h.Add(func(int) bool { return true }, func(e int) { got <- e }, nil)
	h.Publish(7)
	h.Close()
	if e := <-got; e != 7 {
		t.Fatalf("got %d, want the event queued before Close", e)
	}
	stop()
	stop()
	// And the other order: stop, then Close.
	var h2 Hub[int]
	stop2 := h2.Add(func(int) bool { return true }, func(int) {}, nil)
	stop2()
	h2.Close()
	stop2()
}
