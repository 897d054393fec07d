package raftowner

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// StreamMux is the part of cluster.TCP the Raft stream layer needs: a
// listener for one stream kind on the cluster port and a dialer for it,
// both authenticated like every cluster connection.
type StreamMux interface {
	StreamListener(kind cluster.StreamKind) (net.Listener, error)
	DialStream(ctx context.Context, addr string, kind cluster.StreamKind) (net.Conn, error)
	Addr() string
}

var _ StreamMux = (*cluster.TCP)(nil)

// NewStreamTransport returns Raft's transport running over the cluster
// port (stream kind cluster.StreamRaft), so a node needs one port. The
// node's Raft address is mux.Addr(), its advertised cluster address. timeout
// bounds one Raft RPC's I/O; zero means 2 s. Pass the result to New, which
// closes it.
func NewStreamTransport(mux StreamMux, timeout time.Duration, logger hclog.Logger) (*raft.NetworkTransport, error) {
	ln, err := mux.StreamListener(cluster.StreamRaft)
	if err != nil {
		return nil, fmt.Errorf("raftowner: raft stream listener: %w", err)
	}
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn, Output: io.Discard})
	}
	layer := &streamLayer{Listener: ln, mux: mux, addr: streamAddr(mux.Addr()), conns: map[net.Conn]struct{}{}}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: timeout,
		Logger:  logger,
		// No pipelining: raft v1.7.3's pipeline can deadlock at shutdown
		// when a peer stops answering (the sender waits for a decoder that
		// waits for a consumer that has already exited), which hung
		// Close in a fault round. The ownership log carries a few small
		// entries a second; synchronous replication with deadlines costs
		// nothing that matters.
		MaxRPCsInFlight: 1,
	}), nil
}

// streamLayer is raft.StreamLayer over the cluster port. It closes every
// connection it handed out when raft closes it: raft's NetworkTransport
// closes only its listener, so its pooled connections and the goroutines
// serving accepted ones would outlive it until the peer hung up.
type streamLayer struct {
	net.Listener
	mux  StreamMux
	addr net.Addr

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// track registers c, or closes it when the layer is already closed.
func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
	return err
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// Addr is the advertised cluster address: raft uses it as this node's
// ServerAddress, which must be what peers dial, not the bound address.
func (s *streamLayer) Addr() net.Addr { return s.addr }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.mux.DialStream(ctx, string(address), cluster.StreamRaft)
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

type streamAddr string

func (a streamAddr) Network() string { return "sipha" }
func (a streamAddr) String() string  { return string(a) }
