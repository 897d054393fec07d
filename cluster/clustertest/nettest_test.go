package clustertest

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// TestNetConnConformance runs x/net's net.Conn conformance suite (basic I/O,
// racy reads and writes, every kind of deadline, Close during blocked calls,
// concurrent methods) over a connection between two hosts, on a clean link
// and on a slow, lossy one.
func TestNetConnConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
		drop  float64
	}{
		{"clean", 0, 0},
		{"lossy", time.Millisecond, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			CheckLeaks(t)
			n := newNet(t, Config{Seed: 40, RetransmitTimeout: 5 * time.Millisecond})
			n.SetDelay(tc.delay)
			n.SetDropRate(tc.drop)
			l, err := n.Host("b").Listen(context.Background(), "b:1")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				c1, err = n.Host("a").Dial(context.Background(), "b:1")
				if err != nil {
					return nil, nil, nil, err
				}
				c2, err = l.Accept()
				if err != nil {
					c1.Close()
					return nil, nil, nil, err
				}
				return c1, c2, func() { c1.Close(); c2.Close() }, nil
			})
		})
	}
}
