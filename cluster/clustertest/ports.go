package clustertest

import (
	"net"
	"testing"
)

// LoopbackAddrs returns n distinct free 127.0.0.1:port addresses for tests
// that run real servers. It holds every listener open until it has them
// all: picking one port, closing it and picking the next can hand the same
// port out twice (Raft then refuses a configuration with a duplicate
// address). A port is free for TCP and UDP, since SIP listens on both.
// Another process may still take a port before the test binds it; that is
// rare on a test machine and fails loudly.
func LoopbackAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(addrs) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		u, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			continue // the UDP port is taken: keep the TCP one held and pick again
		}
		held = append(held, u)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}
