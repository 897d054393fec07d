package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

	mu      sync.RWMutex
	peers   map[NodeID]*peer
	conns   map[net.Conn]struct{} // accepted connections, closed by Close
	streams map[StreamKind]*streamListener
	closed  bool

	handlers [256]atomic.Pointer[handlerBox]
	watch    watchers
	stats    counters
	closeErr error
	once     sync.Once
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
	t.mu.RLock()
	p, ok := t.peers[to]
	closed := t.closed
	t.mu.RUnlock()
	if closed {
		return ErrClosed
	}
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
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	var first error
	for _, p := range t.peers {
		if err := p.enqueue(ch, payload); err != nil && first == nil {
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
	if old, ok := t.peers[p.ID]; ok {
		old.setAddr(p.Addr)
		return nil
	}
	t.addPeerLocked(p.ID, p.Addr)
	return nil
}

// RemovePeer forgets a peer: its queue is discarded, its connections closed,
// and watchers see it leave.
func (t *TCP) RemovePeer(id NodeID) error {
	t.mu.Lock()
	p, ok := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, id)
	}
	p.beginStop()
	p.finishStop(StateLeft)
	return nil
}

func (t *TCP) addPeerLocked(id NodeID, addr string) *peer {
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.goFunc(p.run)
	return p
}

// Close says goodbye to the peers, stops every goroutine and waits for them.
func (t *TCP) Close() error {
	t.once.Do(func() {
		t.mu.Lock()
		t.closed = true
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

// acceptLoop accepts connections until the listener closes.
func (t *TCP) acceptLoop() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("cluster: accept failed", "err", err)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return
		}
		t.conns[c] = struct{}{}
		t.mu.Unlock()
		t.goFunc(func() { t.serveConn(c) })
	}
}

// forget drops an accepted connection from the set Close closes.
func (t *TCP) forget(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// serveConn runs TLS, the multiplexer byte and the handshake of an accepted
// connection, then hands it to its stream.
func (t *TCP) serveConn(raw net.Conn) {
	conn := raw
	handedOff := false
	defer func() {
		if !handedOff {
			conn.Close()
			t.forget(raw)
		}
	}()
	conn.SetDeadline(time.Now().Add(t.cfg.Profile.DialTimeout))
	if t.srvTLS != nil {
		tc := tls.Server(raw, t.srvTLS)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			t.stats.handshakeFailures.Add(1)
			t.stats.authFailures.Add(1)
			t.log.Warn("cluster: TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
			return
		}
		conn = tc
	}
	br := bufio.NewReaderSize(conn, readBufSize)
	kb, err := br.ReadByte()
	if err != nil {
		return
	}
	kind := StreamKind(kb)
	var sl *streamListener
	if kind != StreamCluster {
		t.mu.RLock()
		sl = t.streams[kind]
		t.mu.RUnlock()
		if sl == nil {
			t.stats.handshakeFailures.Add(1)
			t.log.Warn("cluster: connection for an unknown stream", "remote", raw.RemoteAddr().String(), "kind", kb)
			return
		}
	}
	res, err := t.hs.accept(conn, br, kind)
	if err != nil {
		t.handshakeFailed(raw.RemoteAddr().String(), err)
		return
	}
	conn.SetDeadline(time.Time{})
	if sl != nil {
		t.forget(raw) // the stream's user owns it now
		handedOff = true
		sl.deliver(&bufConn{Conn: conn, r: br})
		return
	}
	t.serveInbound(conn, raw, br, res)
}

func (t *TCP) handshakeFailed(remote string, err error) {
	t.stats.handshakeFailures.Add(1)
	if errors.Is(err, ErrAuthFailed) {
		t.stats.authFailures.Add(1)
	}
	t.log.Warn("cluster: handshake refused", "remote", remote, "err", err)
}

// serveInbound reads a peer's frames from the connection it dialed to us.
func (t *TCP) serveInbound(conn, raw net.Conn, br *bufio.Reader, res handshakeResult) {
	t.mu.Lock()
	p, ok := t.peers[res.id]
	if !ok && !t.closed {
		if res.addr == "" {
			t.mu.Unlock()
			t.log.Warn("cluster: unknown peer advertises no address", "peer", string(res.id))
			return
		}
		t.log.Info("cluster: peer joined", "peer", string(res.id), "addr", res.addr)
		p = t.addPeerLocked(res.id, res.addr)
	}
	t.mu.Unlock()
	if p == nil {
		return
	}
	if res.addr != "" {
		p.setAddr(res.addr)
	}
	gen := p.attachInbound(raw, res.incarnation)
	err := t.readInbound(p, conn, br, gen)
	p.detachInbound(gen)
	if err != nil && !t.isClosed() && !errors.Is(err, errSuperseded) {
		t.log.Debug("cluster: inbound connection ended", "peer", string(p.id), "err", err)
	}
}

// errSuperseded ends a reader whose peer has connected again.
var errSuperseded = errors.New("cluster: connection superseded")

const readBufSize = 64 << 10

// readFrames reads length-prefixed frames from br and calls fn with each
// body. A frame over the cap closes the connection; fn's error ends the loop.
func (t *TCP) readFrames(conn net.Conn, br *bufio.Reader, fn func(body []byte) error) error {
	maxLen := t.cfg.MaxMessageSize + frameOverhead
	var big []byte
	idle := 4 * t.cfg.Profile.DeadTimeout
	var lastDeadline time.Time
	for {
		// Pings arrive every HeartbeatInterval; a connection silent for
		// several dead timeouts is stalled or gone.
		if now := time.Now(); now.Sub(lastDeadline) > idle/4 {
			conn.SetReadDeadline(now.Add(idle))
			lastDeadline = now
		}
		hdr, err := br.Peek(lenPrefix)
		if err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr))
		if n > maxLen {
			t.stats.oversize.Add(1)
			return fmt.Errorf("%w: frame of %d bytes exceeds the cap of %d", ErrTooLarge, n, maxLen)
		}
		var body []byte
		if lenPrefix+n <= br.Size() {
			buf, err := br.Peek(lenPrefix + n)
			if err != nil {
				return err
			}
			body = buf[lenPrefix:]
		} else {
			br.Discard(lenPrefix)
			if cap(big) < n {
				big = make([]byte, n)
			}
			body = big[:n]
			if _, err := io.ReadFull(br, body); err != nil {
				return err
			}
		}
		t.stats.bytesReceived.Add(uint64(lenPrefix + n))
		if err := fn(body); err != nil {
			return err
		}
		if lenPrefix+n <= br.Size() {
			br.Discard(lenPrefix + n)
		}
	}
}

// readInbound delivers a peer's data frames and answers its pings.
func (t *TCP) readInbound(p *peer, conn net.Conn, br *bufio.Reader, gen uint64) error {
	var pong [lenPrefix + pingBodyLen]byte
	return t.readFrames(conn, br, func(body []byte) error {
		f, err := decodeBody(body)
		if err != nil {
			t.stats.malformed.Add(1)
			return nil // the length kept the stream in sync: skip the frame
		}
		switch f.typ {
		case frameData:
			return p.deliver(gen, f)
		case framePing:
			conn.SetWriteDeadline(time.Now().Add(t.cfg.Profile.WriteTimeout))
			_, err := conn.Write(appendStamp(pong[:0], framePong, f.stamp))
			return err
		case frameGoodbye:
			p.goodbye()
		default:
			t.stats.malformed.Add(1)
		}
		return nil
	})
}

// dialStream connects to addr, runs TLS and the handshake for kind. want,
// when set, is the node expected at addr.
// It returns the connection to use and the one below TLS.
func (t *TCP) dialStream(ctx context.Context, addr string, kind StreamKind, want NodeID) (conn, raw net.Conn, br *bufio.Reader, res handshakeResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Profile.DialTimeout)
	defer cancel()
	raw, err = t.cfg.Network.Dial(ctx, addr)
	if err != nil {
		return nil, nil, nil, res, err
	}
	conn = raw
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if t.cliTLS != nil {
		tc := tls.Client(raw, t.cliTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, nil, nil, res, fmt.Errorf("%w: TLS: %v", ErrAuthFailed, err)
		}
		conn = tc
	}
	br = bufio.NewReaderSize(conn, readBufSize)
	res, err = t.hs.dial(conn, br, kind, want)
	if err != nil {
		raw.Close()
		return nil, nil, nil, res, err
	}
	conn.SetDeadline(time.Time{})
	return conn, raw, br, res, nil
}
