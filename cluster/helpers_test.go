package cluster_test

import (
	"net"
	"testing"
)

// freeLoopbackAddrs reserves n loopback ports. The ports are released before
// use, so another process could take one in between; on a test machine that
// race is remote, and a clash fails loudly in NewTCP.
func freeLoopbackAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}
