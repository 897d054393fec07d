package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCP is the production Transport: one listening port per node, persistent
// authenticated connections, per-peer bounded send queues drained in batches
// (one write for many frames), reconnect with backoff, heartbeats and
// liveness, and a first-byte multiplexer so other streams (Raft) share the
// port.
//
// Each pair of nodes uses two connections: each node dials every peer and
// sends its own frames on that connection, and the peer answers its pings on
// it. Liveness is therefore judged by round trips a node starts itself: with
// a one-way cut both sides stop hearing answers and mark each other down.
type TCP struct {
	cfg    Config
	log    *slog.Logger
	hs     handshaker
	ln     net.Listener
	srvTLS *tls.Config
	cliTLS *tls.Config
	start  time.Time // origin of ping stamps

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.RWMutex
	peers map[NodeID]*peer
	// snap is a copy of peers for the send path, replaced (never changed)
	// under mu, so Send takes no lock to find its peer.
	snap    atomic.Pointer[map[NodeID]*peer]
	conns   map[net.Conn]struct{} // accepted connections, closed by Close
	streams map[StreamKind]*streamListener
	removed map[NodeID]bool // refused until AddPeer adds them again
	closed  bool

	refusedMu sync.Mutex
	refused   map[string]time.Time // refusal reason → last Warn

	handlers [256]atomic.Pointer[handlerBox]
	watch    watchers
	stats    counters
	closeErr error
	once     sync.Once
	aborted  atomic.Bool // Abort: no flush, no goodbye
}

type handlerBox struct{ h Handler }

// NewTCP starts a TCP transport: it listens on cfg.Listen and begins dialing
// cfg.Peers. Close stops it.
func NewTCP(ctx context.Context, cfg Config) (*TCP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := cfg.Network.Listen(ctx, cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen %s: %w", cfg.Listen, err)
	}
	t := &TCP{
		cfg:     cfg,
		log:     cfg.Logger.With("node", string(cfg.ID)),
		ln:      ln,
		start:   cfg.Now(),
		peers:   make(map[NodeID]*peer),
		conns:   make(map[net.Conn]struct{}),
		streams: make(map[StreamKind]*streamListener),
		removed: make(map[NodeID]bool),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	var inc [8]byte
	rand.Read(inc[:])
	t.hs = handshaker{id: cfg.ID, cluster: cfg.ClusterName, addr: advertise,
		incarnation: binary.BigEndian.Uint64(inc[:]) | 1, secret: cfg.Secret,
		tls: cfg.TLS != nil, minVer: cfg.minVersion, maxVer: cfg.maxVersion}
	if cfg.TLS != nil {
		t.srvTLS, t.cliTLS = tlsConfigs(cfg.TLS)
	}
	t.mu.Lock()
	t.publishPeersLocked()
	for _, p := range cfg.Peers {
		t.addPeerLocked(p.ID, p.Addr)
	}
	t.mu.Unlock()
	t.goFunc(t.acceptLoop)
	t.goFunc(t.heartbeatLoop)
	return t, nil
}

// goFunc runs f in a goroutine the transport waits for on Close.
func (t *TCP) goFunc(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
}

// LocalID returns this node's ID.
func (t *TCP) LocalID() NodeID { return t.cfg.ID }

// Addr returns the address peers dial (the advertised address).
func (t *TCP) Addr() string { return t.hs.addr }

// Handle registers h for channel ch; nil removes the handler.
func (t *TCP) Handle(ch Channel, h Handler) {
	if h == nil {
		t.handlers[ch].Store(nil)
		return
	}
	t.handlers[ch].Store(&handlerBox{h})
}

// Send queues payload for peer to. It never blocks on the network.
func (t *TCP) Send(to NodeID, ch Channel, payload []byte) error {
	if len(payload) > t.cfg.MaxMessageSize {
		return ErrTooLarge
	}
	peers := t.snap.Load()
	if peers == nil {
		return ErrClosed
	}
	p, ok := (*peers)[to]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, to)
	}
	return p.enqueue(ch, payload)
}

// Broadcast queues payload for every known peer.
func (t *TCP) Broadcast(ch Channel, payload []byte) error {
	if len(payload) > t.cfg.MaxMessageSize {
		return ErrTooLarge
	}
	peers := t.snap.Load()
	if peers == nil {
		return ErrClosed
	}
	var first error
	for _, p := range *peers {
		if err := p.enqueue(ch, payload); err != nil && first == nil && !errors.Is(err, ErrPeerDown) {
			first = err
		}
	}
	return first
}

// Members lists the known peers with their liveness.
func (t *TCP) Members() []Member {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Member, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, p.member())
	}
	return out
}

// WatchMembers calls fn for every liveness change until stop is called.
func (t *TCP) WatchMembers(fn func(MemberEvent)) (stop func()) {
	return t.watch.add(fn)
}

// AddPeer adds a peer at run time and starts dialing it. Adding a known peer
// updates its address.
func (t *TCP) AddPeer(p Peer) error {
	if p.ID == "" || p.Addr == "" {
		return errors.New("cluster: peer needs an ID and an Addr")
	}
	if p.ID == t.cfg.ID {
		return errors.New("cluster: cannot add this node as its own peer")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	delete(t.removed, p.ID)
	if old, ok := t.peers[p.ID]; ok {
		old.setAddr(p.Addr)
		return nil
	}
	t.addPeerLocked(p.ID, p.Addr)
	return nil
}

// RemovePeer forgets a peer: its queue is discarded, its connections closed,
// and watchers see it leave. Its connections are refused from then on, so a
// removed node that still runs cannot join again by connecting; AddPeer
// lets it back.
func (t *TCP) RemovePeer(id NodeID) error {
	t.mu.Lock()
	p, ok := t.peers[id]
	delete(t.peers, id)
	if ok {
		t.removed[id] = true
	}
	t.publishPeersLocked()
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, id)
	}
	p.beginStop()
	p.finishStop(StateLeft)
	return nil
}

// publishPeersLocked replaces the send path's copy of the peer map; after
// Close it is nil, which Send reports as ErrClosed.
func (t *TCP) publishPeersLocked() {
	if t.closed {
		t.snap.Store(nil)
		return
	}
	m := make(map[NodeID]*peer, len(t.peers))
	for id, p := range t.peers {
		m[id] = p
	}
	t.snap.Store(&m)
}

func (t *TCP) addPeerLocked(id NodeID, addr string) *peer {
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.publishPeersLocked()
	p.start()
	return p
}

// Close says goodbye to the peers, stops every goroutine and waits for them.
func (t *TCP) Close() error { return t.shutdown(false) }

// Abort stops the transport as a crash would: every connection is closed at
// once, nothing queued is flushed and no goodbye is sent, so peers see this
// node die (reset connections, refused dials) rather than leave. It is for
// tests, demos and fault drills; Close is the normal way out.
func (t *TCP) Abort() error { return t.shutdown(true) }

func (t *TCP) shutdown(abort bool) error {
	t.once.Do(func() {
		t.aborted.Store(abort)
		t.mu.Lock()
		t.closed = true
		t.publishPeersLocked()
		peers := make([]*peer, 0, len(t.peers))
		for _, p := range t.peers {
			peers = append(peers, p)
		}
		streams := t.streams
		t.streams = map[StreamKind]*streamListener{}
		t.mu.Unlock()

		t.closeErr = t.ln.Close()
		for _, p := range peers {
			p.beginStop() // each flushes its queue and a goodbye, bounded in time
			if abort {
				p.mu.Lock()
				p.closeConns()
				p.mu.Unlock()
			}
		}
		for _, p := range peers {
			p.finishStop(StateUnknown)
		}
		t.cancel()
		for _, l := range streams {
			l.shut()
		}
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		t.wg.Wait()
		t.watch.closeAll()
	})
	return t.closeErr
}

func (t *TCP) isClosed() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.closed
}
