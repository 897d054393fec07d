package clustertest

import (
	"net"
	"strconv"
	"testing"
)

// LoopbackAddrs returns n distinct free 127.0.0.1:port addresses for tests
// that run real servers; see FreeLoopbackPorts.
func LoopbackAddrs(t testing.TB, n int) []string {
	t.Helper()
	ports, err := FreeLoopbackPorts(n)
	if err != nil {
		t.Fatal(err)
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return addrs
}

// FreeLoopbackPorts returns n distinct 127.0.0.1 ports free for both TCP
// and UDP (SIP listens on both). It holds every listener open until it has
// them all: picking one port, closing it and picking the next can hand the
// same port out twice (Raft then refuses a configuration with a duplicate
// address). Another process may still take a port before the caller binds
// it; that is rare on a test machine and fails loudly.
func FreeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var held []interface{ Close() error }
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, ln)
		u, err := net.ListenPacket("udp", ln.Addr().String())
		if err != nil {
			continue // the UDP port is taken: keep the TCP one held and pick again
		}
		held = append(held, u)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
