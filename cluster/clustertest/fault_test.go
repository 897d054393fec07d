package clustertest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestKillResetsPeerAndRefusesDials(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 10})
	ctx := context.Background()
	l, err := n.Host("b").Listen(ctx, "b:5060")
	if err != nil {
		t.Fatal(err)
	}
	acceptErr := make(chan error, 1)
	c, err := n.Host("a").Dial(ctx, "b:5060")
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, err := l.Accept(); acceptErr <- err }()
	mustWrite(t, s, "unread")
	time.Sleep(time.Millisecond)
	n.Kill("b")

	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on killed host: %v, want net.ErrClosed", err)
	}
	for _, call := range []func() error{
		func() error { _, err := s.Read(make([]byte, 1)); return err },
		func() error { _, err := s.Write([]byte("x")); return err },
		func() error { return s.SetDeadline(time.Time{}) },
		s.Close,
	} {
		if err := call(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("call on the killed host's conn: %v, want net.ErrClosed", err)
		}
	}
	// The peer gets a reset on its next Read, even with bytes unread, and
	// on every call after.
	if _, err := c.Read(make([]byte, 10)); !isReset(err) {
		t.Errorf("peer read after kill: %v, want ECONNRESET", err)
	}
	if _, err := c.Write([]byte("x")); !isReset(err) {
		t.Errorf("peer write after kill: %v, want ECONNRESET", err)
	}
	if _, err := n.Host("a").Dial(ctx, "b:5060"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial to killed host: %v, want ECONNREFUSED", err)
	}
	if _, err := n.Host("b").Listen(ctx, "b:5060"); !errors.Is(err, ErrHostDown) {
		t.Errorf("listen on killed host: %v, want ErrHostDown", err)
	}
	if _, err := n.Host("b").Dial(ctx, "a:1"); !errors.Is(err, ErrHostDown) {
		t.Errorf("dial from killed host: %v, want ErrHostDown", err)
	}

	n.Restart("b")
	l2, err := n.Host("b").Listen(ctx, "b:5060")
	if err != nil {
		t.Fatalf("listen after restart: %v", err)
	}
	defer l2.Close()
	c2, err := n.Host("a").Dial(ctx, "b:5060")
	if err != nil {
		t.Fatalf("dial after restart: %v", err)
	}
	defer c2.Close()
	s2, err := l2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mustWrite(t, c2, "back")
	expectRead(t, s2, "back")
}

// TestKillFailsPendingDial: a dial from a host waiting on a partition fails
// when its host is killed, instead of waiting for its context.
func TestKillFailsPendingDial(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 19})
	n.Partition([]string{"a"}, []string{"b"})
	errc := make(chan error, 1)
	go func() { _, err := n.Host("a").Dial(context.Background(), "b:1"); errc <- err }()
	time.Sleep(5 * time.Millisecond) // let it block (either order passes)
	n.Kill("a")
	if err := <-errc; !errors.Is(err, ErrHostDown) {
		t.Fatalf("pending dial from killed host: %v, want ErrHostDown", err)
	}
}

func TestKillResetWaitsForLink(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 11})
	c, _ := connect(t, n, "a", "b", 1)
	n.Cut("b", "a")
	n.Kill("b")
	expectNothing(t, c, 20*time.Millisecond) // the reset is lost on the cut link
	n.Heal()
	if _, err := c.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("read after heal: %v, want ECONNRESET", err)
	}
}

func TestDialRefused(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 12})
	ctx := context.Background()
	for _, addr := range []string{"b:1", "nobody:1"} {
		_, err := n.Host("a").Dial(ctx, addr)
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &oe) {
			t.Errorf("dial %s: %v, want *net.OpError with ECONNREFUSED", addr, err)
		}
	}
	for _, addr := range []string{"b", "b:x", "b:70000", "[::1]:1"} {
		if _, err := n.Host("a").Dial(ctx, addr); !errors.Is(err, ErrBadAddress) {
			t.Errorf("dial %q: %v, want ErrBadAddress", addr, err)
		}
	}
	if _, err := n.Host("a").Listen(ctx, "b:1"); !errors.Is(err, ErrBadAddress) {
		t.Errorf("listen on another host's address: %v, want ErrBadAddress", err)
	}
	l, err := n.Host("a").Listen(ctx, ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := n.Host("a").Listen(ctx, "a:7"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("listen on a port in use: %v, want EADDRINUSE", err)
	}
	l0, err := n.Host("a").Listen(ctx, "a:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l0.Close()
	if p := l0.Addr().(Addr).Port; p < firstEphemeral {
		t.Errorf("port 0 allocated %d, want an ephemeral port", p)
	}
}

func TestPartitionHoldsThenHealDelivers(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 13})
	c, s := connect(t, n, "a", "b", 1)
	mustWrite(t, c, "before|")
	time.Sleep(time.Millisecond)
	n.Partition([]string{"a"}, []string{"b", "c"})
	// Bytes delivered before the partition stay readable.
	expectRead(t, s, "before|")
	for _, m := range []string{"1", "2", "3"} {
		mustWrite(t, c, m)
	}
	mustWrite(t, s, "back")
	expectNothing(t, s, 20*time.Millisecond)
	expectNothing(t, c, time.Millisecond)
	st := n.Stats()
	if d := st.Delivered[Link{"a", "b"}]; d != 7 {
		t.Errorf("delivered a->b during partition = %d, want the 7 bytes from before", d)
	}
	if p := st.Pending[Link{"a", "b"}]; p != 3 {
		t.Errorf("pending a->b = %d, want 3", p)
	}
	n.Heal()
	expectRead(t, s, "123")
	expectRead(t, c, "back")
}

// TestPartitionGroups checks who can talk under a partition, including hosts
// named in no group, which form a group of their own.
func TestPartitionGroups(t *testing.T) {
	n := NewNetwork(14)
	defer n.Close()
	n.Partition([]string{"a", "b"}, []string{"c"})
	for _, tc := range []struct {
		from, to string
		open     bool
	}{
		{"a", "b", true}, {"b", "a", true}, {"a", "c", false}, {"c", "b", false},
		{"d", "e", true}, {"d", "a", false}, {"e", "c", false}, {"c", "c", true},
	} {
		n.mu.Lock()
		open := n.linkOpen(tc.from, tc.to)
		n.mu.Unlock()
		if open != tc.open {
			t.Errorf("link %s->%s open = %v, want %v", tc.from, tc.to, open, tc.open)
		}
	}
}

func TestPartitionFullBufferBlocksWrite(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 15, BufferSize: 10})
	c, s := connect(t, n, "a", "b", 1)
	n.Partition([]string{"a"}, []string{"b"})
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if m, err := c.Write([]byte("0123456789abc")); m != 10 || !isTimeout(err) {
		t.Fatalf("write across partition: n=%d err=%v; want 10 then timeout", m, err)
	}
	c.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := c.Write([]byte("abc")); done <- err }()
	n.Heal()
	expectRead(t, s, "0123456789abc")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestOneWayCut(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 16})
	c, s := connect(t, n, "a", "b", 1)
	n.Cut("a", "b")
	mustWrite(t, s, "b->a flows")
	expectRead(t, c, "b->a flows")
	mustWrite(t, c, "held")
	expectNothing(t, s, 20*time.Millisecond)

	// Neither direction can set up a connection: a's SYN is lost one way,
	// b's SYN-ACK the other.
	la, err := n.Host("a").Listen(context.Background(), "a:2")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	expectDialHangs(t, n, "a", "b:1")
	expectDialHangs(t, n, "b", "a:2")
	n.Heal()
	expectRead(t, s, "held")
}

// expectDialHangs checks that a dial hangs until its context's deadline and
// then fails with a timeout error.
func expectDialHangs(t *testing.T, n *Network, from, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := n.Host(from).Dial(ctx, addr); !isDialTimeout(err) {
		t.Errorf("dial %s -> %s: %v, want a timeout", from, addr, err)
	}
}

func isDialTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() &&
		errors.Is(err, context.DeadlineExceeded) && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestBlackhole(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 17})
	c, s := connect(t, n, "a", "b", 1)
	n.Blackhole("b")
	mustWrite(t, c, "in")
	mustWrite(t, s, "out")
	expectNothing(t, s, 20*time.Millisecond)
	expectNothing(t, c, time.Millisecond)
	expectDialHangs(t, n, "a", "b:1")
	expectDialHangs(t, n, "b", "a:1")
	// A dial waiting on the blackhole completes once it heals.
	dialed := make(chan error, 1)
	go func() {
		conn, err := n.Host("a").Dial(context.Background(), "b:1")
		if err == nil {
			conn.Close()
		}
		dialed <- err
	}()
	time.Sleep(5 * time.Millisecond)
	n.Heal()
	if err := <-dialed; err != nil {
		t.Fatalf("dial after heal: %v", err)
	}
	expectRead(t, s, "in")
	expectRead(t, c, "out")
}

// TestCloseWhileHeld: a conn closed while its bytes are held loses them, and
// the peer learns it from a reset at Heal, never from a clean EOF after a
// cut-short stream. A FIN with nothing held just waits for the link.
func TestCloseWhileHeld(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 18})
	c, s := connect(t, n, "a", "b", 1)
	c2, s2 := connect(t, n, "a", "b", 2)
	n.Partition([]string{"a"}, []string{"b"})
	mustWrite(t, c, "doomed")
	c.Close()
	c2.Close()
	expectNothing(t, s, 10*time.Millisecond)
	expectNothing(t, s2, 10*time.Millisecond) // the FIN is held too
	if p := n.Stats().Pending[Link{"a", "b"}]; p != 0 {
		t.Errorf("pending after close = %d, want 0 (held bytes discarded)", p)
	}
	n.Heal()
	if _, err := s.Read(make([]byte, 10)); !isReset(err) {
		t.Errorf("read after heal: %v, want ECONNRESET", err)
	}
	if _, err := s2.Read(make([]byte, 10)); err != io.EOF {
		t.Errorf("read after heal: %v, want io.EOF", err)
	}
}
