package raftowner

import (
	"sync"

	"github.com/sipha/sipha/cluster"
)

// memNet is a stand-in cluster.Transport network for tests until
// cluster/clustertest lands: per-destination FIFO delivery on one goroutine
// per node, directional cuts. It keeps the parts of the Transport contract
// raftowner relies on (FIFO per peer, never blocking the sender, loss on a
// cut link).
type memNet struct {
	mu    sync.Mutex
	nodes map[cluster.NodeID]*memTransport
	cut   map[[2]cluster.NodeID]bool
}

func newMemNet() *memNet {
	return &memNet{nodes: map[cluster.NodeID]*memTransport{}, cut: map[[2]cluster.NodeID]bool{}}
}

// setCut drops (or, with false, delivers again) messages from a to b.
func (n *memNet) setCut(a, b cluster.NodeID, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.cut[[2]cluster.NodeID{a, b}] = true
	} else {
		delete(n.cut, [2]cluster.NodeID{a, b})
	}
}

func (n *memNet) transport(id cluster.NodeID) *memTransport {
	t := &memTransport{net: n, id: id, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	n.mu.Lock()
	n.nodes[id] = t
	n.mu.Unlock()
	go t.run()
	return t
}

type memTransport struct {
	net *memNet
	id  cluster.NodeID

	mu       sync.Mutex
	handlers map[cluster.Channel]cluster.Handler
	queue    []cluster.Message
	closed   bool
	wake     chan struct{}
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func (t *memTransport) LocalID() cluster.NodeID { return t.id }

func (t *memTransport) Send(to cluster.NodeID, ch cluster.Channel, payload []byte) error {
	t.net.mu.Lock()
	dst := t.net.nodes[to]
	cut := t.net.cut[[2]cluster.NodeID{t.id, to}]
	t.net.mu.Unlock()
	if dst == nil {
		return cluster.ErrUnknownPeer
	}
	if cut {
		return nil
	}
	dst.mu.Lock()
	if !dst.closed {
		dst.queue = append(dst.queue, cluster.Message{From: t.id, Channel: ch, Payload: append([]byte(nil), payload...)})
	}
	dst.mu.Unlock()
	select {
	case dst.wake <- struct{}{}:
	default:
	}
	return nil
}

func (t *memTransport) Broadcast(ch cluster.Channel, payload []byte) error {
	t.net.mu.Lock()
	var ids []cluster.NodeID
	for id := range t.net.nodes {
		if id != t.id {
			ids = append(ids, id)
		}
	}
	t.net.mu.Unlock()
	for _, id := range ids {
		_ = t.Send(id, ch, payload)
	}
	return nil
}

func (t *memTransport) Handle(ch cluster.Channel, h cluster.Handler) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.handlers == nil {
		t.handlers = map[cluster.Channel]cluster.Handler{}
	}
	if h == nil {
		delete(t.handlers, ch)
	} else {
		t.handlers[ch] = h
	}
}

func (t *memTransport) Members() []cluster.Member { return nil }

func (t *memTransport) Close() error {
	t.once.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.queue = nil
		t.mu.Unlock()
		close(t.quit)
		<-t.done
		t.net.mu.Lock()
		if t.net.nodes[t.id] == t {
			delete(t.net.nodes, t.id)
		}
		t.net.mu.Unlock()
	})
	return nil
}

func (t *memTransport) run() {
	defer close(t.done)
	for {
		select {
		case <-t.quit:
			return
		case <-t.wake:
		}
		for {
			t.mu.Lock()
			if len(t.queue) == 0 || t.closed {
				t.mu.Unlock()
				break
			}
			m := t.queue[0]
			t.queue = t.queue[1:]
			h := t.handlers[m.Channel]
			t.mu.Unlock()
			if h != nil {
				h.HandleMessage(m)
			}
		}
	}
}
