package clustertest

import (
	"context"
	"errors"
	"testing"
)

// FuzzAddr feeds arbitrary addresses to Listen and Dial: each must either
// work or fail with a clear error, never panic, and a parsed address must
// print back to the same host and port.
func FuzzAddr(f *testing.F) {
	for _, s := range []string{"b:1", ":0", "a:65535", "a:65536", "b", "", "[a]:1", "[::1]:80", "a:-1", "a:+1", "a:0x10", "a:b:c", "é:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		host, port, err := splitAddr(addr)
		if err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("splitAddr(%q) error %v does not wrap ErrBadAddress", addr, err)
			}
		} else {
			h2, p2, err := splitAddr(Addr{host, port}.String())
			if err != nil || h2 != host || p2 != port {
				t.Fatalf("%q parsed to (%q, %d), printed back to (%q, %d, %v)", addr, host, port, h2, p2, err)
			}
		}
		n := NewNetwork(1)
		defer n.Close()
		if l, err := n.Host("a").Listen(context.Background(), addr); err == nil {
			l.Close()
		}
		if c, err := n.Host("a").Dial(context.Background(), addr); err == nil {
			c.Close()
		}
	})
}
