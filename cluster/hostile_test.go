package cluster_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// victim starts node a and a second authenticated node "evil" that a knows
// nothing about; evil's raw connections to a look like any peer's.
func victim(t *testing.T) (a, evil *cluster.TCP, got *recorder) {
	t.Helper()
	clustertest.CheckLeaks(t)
	addrs := freeLoopbackAddrs(t, 2)
	a = startTCP(t, []cluster.NodeID{"a"}, nil, func(int) string { return addrs[0] }, nil)[0]
	// evil advertises a dead address, so a can never dial back and evil's
	// own transport never opens a real connection that would supersede the
	// forged one.
	evil = startTCP(t, []cluster.NodeID{"evil"}, nil, func(int) string { return addrs[1] }, func(c *cluster.Config) {
		c.Advertise = "127.0.0.1:1"
	})[0]
	got = &recorder{}
	a.Handle(cluster.ChannelUser, got)
	return a, evil, got
}

type recorder struct {
	mu   sync.Mutex
	msgs []cluster.Message
}

func (r *recorder) HandleMessage(m cluster.Message) {
	r.mu.Lock()
	m.Payload = append([]byte(nil), m.Payload...)
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) all() []cluster.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.Message(nil), r.msgs...)
}

func rawFrame(typ byte, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	return append(append(b, typ), body...)
}

func TestMalformedFramesAreSkipped(t *testing.T) {
	a, evil, got := victim(t)
	conn, err := evil.DialClusterStream(context.Background(), a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var stream []byte
	stream = append(stream, rawFrame(99, []byte("unknown type"))...)                 // skipped
	stream = append(stream, rawFrame(1, []byte{byte(cluster.ChannelUser)})...)       // data without a seq
	stream = append(stream, rawFrame(1, []byte{byte(cluster.ChannelUser), 0x80})...) // truncated uvarint
	stream = append(stream, rawFrame(2, []byte{1, 2, 3})...)                         // short ping
	stream = append(stream, binary.BigEndian.AppendUint32(nil, 0)...)                // empty frame
	stream = cluster.AppendData(stream, cluster.ChannelUser, 1, []byte("good one"))  // delivered
	stream = cluster.AppendData(stream, cluster.ChannelUser, 1, []byte("replayed"))  // duplicate seq
	stream = cluster.AppendData(stream, cluster.ChannelUser+1, 2, []byte("nobody"))  // unhandled channel
	stream = cluster.AppendData(stream, cluster.ChannelUser, 5, []byte("after gap")) // delivered, Missed 3
	if _, err := conn.Write(stream); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return len(got.all()) == 2 }, "valid frames around the bad ones not delivered")
	msgs := got.all()
	if string(msgs[0].Payload) != "good one" || string(msgs[1].Payload) != "after gap" || msgs[1].Missed != 3 {
		t.Fatalf("delivered %+v", msgs)
	}
	s := a.Stats()
	if s.DroppedMalformed != 5 || s.DroppedDuplicate != 1 || s.DroppedUnknownChannel != 1 {
		t.Fatalf("stats %+v: want 5 malformed, 1 duplicate, 1 unknown channel", s)
	}
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	a, evil, _ := victim(t)
	conn, err := evil.DialClusterStream(context.Background(), a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading after an oversized frame: %v (want the connection closed)", err)
	}
	if s := a.Stats(); s.ClosedOversize != 1 {
		t.Fatalf("ClosedOversize = %d, want 1", s.ClosedOversize)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

func TestGarbageBeforeHandshake(t *testing.T) {
	a, _, _ := victim(t)
	inputs := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{byte(cluster.StreamCluster), 'S', 'P', 'H', 'A', 0, 0, 0, 0},
		append([]byte{byte(cluster.StreamCluster)}, make([]byte, 200)...),
		{'Z'}, // unknown stream kind
		{},
	}
	for _, in := range inputs {
		c, err := net.Dial("tcp", a.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c) // returns when a closes its side
		c.Close()
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return a.Stats().HandshakeFailures >= 3 }, "garbage handshakes not counted: %+v", a.Stats())
	if len(a.Members()) != 0 {
		t.Fatalf("garbage created members: %+v", a.Members())
	}
}

func TestStalledHandshakeIsClosed(t *testing.T) {
	addrs := freeLoopbackAddrs(t, 1)
	a := startTCP(t, []cluster.NodeID{"a"}, nil, func(int) string { return addrs[0] }, func(c *cluster.Config) {
		c.Profile = cluster.LAN()
		c.Profile.DialTimeout = 200 * time.Millisecond
	})[0]
	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{byte(cluster.StreamCluster), 'S', 'P'}) // then nothing
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a stalled handshake was never closed")
	}
}

func TestStreamMultiplexer(t *testing.T) {
	a, b := pair(t, nil, nil)
	ln, err := a.StreamListener(cluster.StreamRaft)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := a.StreamListener(cluster.StreamRaft); err == nil {
		t.Fatal("a second listener for one stream kind was allowed")
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := b.DialStream(context.Background(), a.Addr(), cluster.StreamRaft)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("echo me"))
	buf := make([]byte, 7)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "echo me" {
		t.Fatalf("echo over the raft stream: %q, %v", buf, err)
	}
	// A node without the secret cannot open a stream either.
	intruder := startTCP(t, []cluster.NodeID{"x"}, nil, func(int) string { return "127.0.0.1:0" }, func(c *cluster.Config) {
		c.Secret = []byte("not-the-cluster-secret-at-all")
	})[0]
	if _, err := intruder.DialStream(context.Background(), a.Addr(), cluster.StreamRaft); !errors.Is(err, cluster.ErrAuthFailed) {
		t.Fatalf("DialStream with a wrong secret returned %v, want ErrAuthFailed", err)
	}
}

func TestRestartedPeerIsFlagged(t *testing.T) {
	clustertest.CheckLeaks(t)
	addrs := freeLoopbackAddrs(t, 2)
	addr := func(i int) string { return addrs[i] }
	ids := []cluster.NodeID{"a", "b"}
	a := startTCP(t, ids[:1], nil, addr, nil)[0]
	var got recorder
	a.Handle(cluster.ChannelUser, &got)
	start := func() *cluster.TCP {
		return startTCP(t, []cluster.NodeID{"b"}, nil, func(int) string { return addrs[1] }, func(c *cluster.Config) {
			c.Peers = []cluster.Peer{{ID: "a", Addr: addrs[0]}}
		})[0]
	}
	b := start()
	b.Send("a", cluster.ChannelUser, []byte("one"))
	b.Send("a", cluster.ChannelUser, []byte("two"))
	clustertest.Eventually(t, 5*time.Second, func() bool { return len(got.all()) == 2 }, "first incarnation's messages")
	b.Close()
	clustertest.Eventually(t, 5*time.Second, func() bool { return a.Members()[0].State == cluster.StateLeft }, "graceful close not seen as left")
	b = start()
	b.Send("a", cluster.ChannelUser, []byte("three"))
	clustertest.Eventually(t, 5*time.Second, func() bool { return len(got.all()) == 3 }, "second incarnation's message")
	m := got.all()[2]
	if !m.Restarted || m.Seq != 1 || m.Missed != 0 {
		t.Fatalf("first message of a restarted peer: %+v, want Restarted, Seq 1, Missed 0", m)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return a.Members()[0].State == cluster.StateUp }, "restarted peer not up again")
}

func TestJoinAtRunTime(t *testing.T) {
	clustertest.CheckLeaks(t)
	addrs := freeLoopbackAddrs(t, 2)
	a := startTCP(t, []cluster.NodeID{"a"}, nil, func(int) string { return addrs[0] }, nil)[0]
	b := startTCP(t, []cluster.NodeID{"b"}, nil, func(int) string { return addrs[1] }, func(c *cluster.Config) {
		c.Peers = []cluster.Peer{{ID: "a", Addr: addrs[0]}}
	})[0]
	clustertest.WaitUp(t, asTransports([]*cluster.TCP{a, b}))
	var got recorder
	b.Handle(cluster.ChannelUser, &got)
	if err := a.Send("b", cluster.ChannelUser, []byte("welcome")); err != nil {
		t.Fatalf("a cannot send to the node that joined it: %v", err)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return len(got.all()) == 1 }, "message to joined node")
	if err := a.RemovePeer("b"); err != nil {
		t.Fatal(err)
	}
	// b still runs and keeps dialing a: it must not come back on its own.
	for i := 0; i < 20; i++ {
		if err := a.Send("b", cluster.ChannelUser, []byte("x")); !errors.Is(err, cluster.ErrUnknownPeer) {
			t.Fatalf("Send to a removed peer returned %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.AddPeer(cluster.Peer{ID: "b", Addr: addrs[1]}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return a.Send("b", cluster.ChannelUser, []byte("back")) == nil }, "re-added peer unusable")
}

func TestWatchMembers(t *testing.T) {
	a, b := pair(t, nil, nil)
	var mu sync.Mutex
	var events []cluster.MemberEvent
	stop := a.WatchMembers(func(e cluster.MemberEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	defer stop()
	clustertest.WaitUp(t, asTransports([]*cluster.TCP{a, b}))
	b.Close()
	clustertest.Eventually(t, 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0 && events[len(events)-1].State == cluster.StateLeft
	}, "no left event after the peer closed")
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(events); i++ {
		if events[i].Old != events[i-1].State {
			t.Fatalf("events out of order: %+v", events)
		}
	}
}

// TestAbortLooksLikeACrash: after Abort the peer sees a death (down), not a
// goodbye (left).
func TestAbortLooksLikeACrash(t *testing.T) {
	a, b := pair(t, nil, nil)
	clustertest.WaitUp(t, asTransports([]*cluster.TCP{a, b}))
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return a.Members()[0].State == cluster.StateDown },
		"an aborted peer not seen down (state %s)", a.Members()[0].State)
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Abort: %v", err)
	}
}
