package dnssrv

// lru is a size-bounded map that drops the least recently used entry. It
// is not safe for concurrent use; its owner holds a mutex around it. Get
// does not allocate, which keeps the cached Resolve path cheap.
type lru[K comparable, V any] struct {
	max  int
	m    map[K]*lruNode[K, V]
	root lruNode[K, V] // sentinel: root.next is the newest, root.prev the oldest
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	l := &lru[K, V]{max: max, m: make(map[K]*lruNode[K, V])}
	l.root.prev, l.root.next = &l.root, &l.root
	return l
}

func (l *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (l *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &l.root, l.root.next
	n.prev.next, n.next.prev = n, n
}

func (l *lru[K, V]) get(k K) (V, bool) {
	n, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.unlink(n)
	l.pushFront(n)
	return n.val, true
}

func (l *lru[K, V]) put(k K, v V) {
	if n, ok := l.m[k]; ok {
		n.val = v
		l.unlink(n)
		l.pushFront(n)
		return
	}
	for len(l.m) >= l.max && l.root.prev != &l.root {
		old := l.root.prev
		l.unlink(old)
		delete(l.m, old.key)
	}
	n := &lruNode[K, V]{key: k, val: v}
	l.m[k] = n
	l.pushFront(n)
}

func (l *lru[K, V]) len() int { return len(l.m) }
