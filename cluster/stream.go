package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
)

// StreamListener returns a listener for connections of another protocol
// that share the cluster port (Raft's stream layer uses StreamRaft). Every
// such connection is authenticated like the transport's own before Accept
// returns it. Closing the listener frees the kind for another listener.
func (t *TCP) StreamListener(kind StreamKind) (net.Listener, error) {
	if kind == StreamCluster {
		return nil, fmt.Errorf("cluster: stream kind %q is the transport's own", kind)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if _, ok := t.streams[kind]; ok {
		return nil, fmt.Errorf("cluster: a listener for stream kind %q exists", kind)
	}
	l := &streamListener{t: t, kind: kind, conns: make(chan net.Conn), quit: make(chan struct{})}
	t.streams[kind] = l
	return l, nil
}

// DialStream connects to a node's cluster port for a stream of another
// protocol, authenticated like the transport's own connections.
func (t *TCP) DialStream(ctx context.Context, addr string, kind StreamKind) (net.Conn, error) {
	if t.isClosed() {
		return nil, ErrClosed
	}
	conn, _, br, _, err := t.dialStream(ctx, addr, kind, "")
	if err != nil {
		return nil, err
	}
	return &bufConn{Conn: conn, r: br}, nil
}

type streamListener struct {
	t     *TCP
	kind  StreamKind
	conns chan net.Conn
	quit  chan struct{}
	once  sync.Once
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.quit:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.t.mu.Lock()
	if l.t.streams[l.kind] == l {
		delete(l.t.streams, l.kind)
	}
	l.t.mu.Unlock()
	l.shut()
	return nil
}

func (l *streamListener) shut() { l.once.Do(func() { close(l.quit) }) }

func (l *streamListener) Addr() net.Addr { return l.t.ln.Addr() }

// deliver hands an authenticated connection to Accept, or closes it when
// the listener or the transport closes first.
func (l *streamListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.quit:
		c.Close()
	case <-l.t.ctx.Done():
		c.Close()
	}
}

// bufConn is a connection whose first bytes were already buffered by the
// handshake's reader.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }
