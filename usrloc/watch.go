package usrloc

import (
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Watch calls fn for every change of the bindings of aor, or of every AOR
// when aor is "". Changes made here and those replicated from other nodes
// are both delivered (Event.Remote tells them apart).
//
// Concurrency: fn runs on one goroutine per watcher, never concurrently with
// itself, in the order the changes were made to each AOR. Events queue
// without bound while fn runs, so fn should not block for long. stop
// removes the watcher and waits for a running fn; do not call it from fn.
func (s *Store) Watch(aor string, fn func(Event)) (stop func()) {
	w := &watcher{aor: aor, all: aor == "", fn: fn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	s.wmu.Lock()
	ws := append(append([]*watcher(nil), *s.watchers.Load()...), w)
	s.watchers.Store(&ws)
	s.wmu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.wmu.Lock()
			old := *s.watchers.Load()
			ws := make([]*watcher, 0, len(old))
			for _, x := range old {
				if x != w {
					ws = append(ws, x)
				}
			}
			s.watchers.Store(&ws)
			s.wmu.Unlock()
			w.stop()
		})
	}
}

func (s *Store) hasWatchers() bool { return len(*s.watchers.Load()) > 0 }

// emit queues events for the watchers that want them.
func (s *Store) emit(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for _, w := range *s.watchers.Load() {
		w.mu.Lock()
		for _, ev := range evs {
			if w.all || ev.Binding.AOR == w.aor {
				w.q = append(w.q, ev)
			}
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

type watcher struct {
	aor  string
	all  bool
	fn   func(Event)
	mu   sync.Mutex
	q    []Event
	wake chan struct{}
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func (w *watcher) run() {
	defer w.wg.Done()
	// Two queues take turns: emit appends to one while fn runs over the
	// other, which then goes back empty. A new slice per wake-up was a
	// third of the bytes a replicated change allocated, and garbage
	// collection is what stretches replication lag on a busy host.
	var q []Event
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			q, w.q = w.q, q[:0]
			w.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, ev := range q {
				select {
				case <-w.done:
					return
				default:
				}
				w.fn(ev)
			}
			clear(q) // keep no binding alive for the collector
		}
	}
}

func (w *watcher) stop() {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
}

// Binding is one contact registered for an address of record. Its strings
// share memory with the store; they are immutable and stay valid after the
// binding is replaced or removed.
type Binding struct {
	AOR string
	// Contact is the contact URI without the header parameters.
	Contact string
	// Received is the source address the REGISTER came from ("ip:port"):
	// where requests go when the UA is behind NAT.
	Received string
	// Socket is the local socket it came in on ("udp:ip:port"); NAT
	// keepalives and requests to the UA must leave from it. For a socket
	// bound to a wildcard address the registrar names it by the address
	// it answers the UA from (see RegistrarConfig.Socket).
	Socket string
	// Path is the Path header values (RFC 3327), comma-separated in order.
	Path string
	// Instance is the +sip.instance value and RegID the reg-id (RFC 5626);
	// together they identify the binding instead of Contact.
	Instance string
	RegID    uint32
	// Q is the q-value in thousandths (1000 = q=1.0). The registrar
	// stores 1000 for a Contact without q.
	Q         uint16
	Expires   time.Time // by this node's clock
	CallID    string
	CSeq      uint32
	UserAgent string
	// Node is the node the UA registered through.
	Node  cluster.NodeID
	Flags uint8
	// Version orders concurrent writes of the binding across nodes.
	Version HLC
}

// Remaining is how long b stays registered after now, rounded up to whole
// seconds as a registrar reports it.
func (b *Binding) Remaining(now time.Time) int {
	d := b.Expires.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// EventKind says what happened to a binding.
type EventKind uint8

const (
	// Added: a binding that did not exist now does.
	Added EventKind = iota + 1
	// Updated: an existing binding was refreshed or changed.
	Updated
	// Removed: the binding was un-registered (here or on another node).
	Removed
	// Expired: the binding's expiry passed.
	Expired
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Removed:
		return "removed"
	case Expired:
		return "expired"
	}
	return "event?"
}

// Event is a change of one binding.
type Event struct {
	Kind EventKind
	// Remote is set when the change came from another node.
	Remote  bool
	Binding Binding
}
