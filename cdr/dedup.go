package cdr

// window remembers the last n IDs seen, forgetting the oldest first. It is
// not safe for concurrent use; the Receiver guards it.
type window struct {
	ring []string
	next int
	full bool
	set  map[string]struct{}
}

func newWindow(n int) *window {
	return &window{ring: make([]string, n), set: make(map[string]struct{}, n)}
}

func (w *window) has(id string) bool {
	_, ok := w.set[id]
	return ok
}

func (w *window) add(id string) {
	if w.has(id) {
		return
	}
	if w.full {
		delete(w.set, w.ring[w.next])
	}
	w.ring[w.next] = id
	w.set[id] = struct{}{}
	w.next++
	if w.next == len(w.ring) {
		w.next, w.full = 0, true
	}
}
