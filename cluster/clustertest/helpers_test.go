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

// connect listens on to:port and dials it from `from`, returning both ends.
func connect(t testing.TB, n *Network, from, to string, port int) (client, server net.Conn) {
	t.Helper()
	ctx := context.Background()
	addr := Addr{Host: to, Port: port}.String()
	l, err := n.Host(to).Listen(ctx, addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	client, err = n.Host(from).Dial(ctx, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// newNet returns a network closed at the end of the test, logging its seed.
func newNet(t testing.TB, cfg Config) *Network {
	t.Helper()
	t.Logf("network seed %d", cfg.Seed)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mustWrite(t testing.TB, c net.Conn, s string) {
	t.Helper()
	if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: n=%d err=%v", s, n, err)
	}
}

// readN reads exactly n bytes with a generous deadline.
func readN(t testing.TB, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// expectRead reads len(want) bytes and checks they are want.
func expectRead(t testing.TB, c net.Conn, want string) {
	t.Helper()
	if got := readN(t, c, len(want)); got != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectNothing checks that a read within d gets no data but a timeout.
func expectNothing(t testing.TB, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, 16)
	n, err := c.Read(b)
	if n != 0 || !isTimeout(err) {
		t.Fatalf("read got %q, %v; want nothing and a timeout", b[:n], err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && errors.Is(err, syscall.ECONNRESET)
}
