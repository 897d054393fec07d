package usrloc

import (
	"net"
	"testing"
	"time"
)

// A socket bound to a wildcard address is named by the address the host
// answers the UA from, not by 0.0.0.0 (which every node would share); a
// socket bound to an address keeps it.
func TestSocketNameOfWildcardSocket(t *testing.T) {
	now := time.Unix(1e9, 0)
	n := newSocketNames(func() time.Time { return now })
	cases := []struct{ local, source, want string }{
		{"0.0.0.0:5060", "127.0.0.1:40000", "udp:127.0.0.1:5060"},
		{"127.0.0.1:5070", "127.0.0.1:40000", "udp:127.0.0.1:5070"},
		{"0.0.0.0:5060", "not an address", "udp:0.0.0.0:5060"},
		{"0.0.0.0:5060", "127.0.0.1:40001", "udp:127.0.0.1:5060"}, // from the cache
	}
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err == nil {
		c.Close()
		cases = append(cases, struct{ local, source, want string }{"[::]:5060", "[::1]:40000", "udp:[::1]:5060"})
	} else {
		t.Logf("no IPv6 loopback, its case skipped: %v", err)
	}
	for _, c := range cases {
		if got := n.nameOf("udp", c.local, c.source); got != c.want {
			t.Errorf("socket %s, request from %s: named %q, want %q", c.local, c.source, got, c.want)
		}
	}
	now = now.Add(2 * routeTTL) // looked up again once stale
	if got := n.nameOf("udp", "0.0.0.0:5060", "127.0.0.1:40000"); got != "udp:127.0.0.1:5060" {
		t.Errorf("after the cache went stale: %q", got)
	}
}
