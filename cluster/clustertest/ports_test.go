package clustertest

import (
	"net"
	"testing"
)

func TestLoopbackAddrsDistinct(t *testing.T) {
	for range 20 {
		addrs := LoopbackAddrs(t, 5)
		seen := map[string]bool{}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("address %s handed out twice: %v", a, addrs)
			}
			seen[a] = true
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("%s is not free after LoopbackAddrs: %v", a, err)
			}
			ln.Close()
		}
	}
}
