package cluster_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// pair starts nodes a and b (b lists a as its peer) with per-node tweaks.
func pair(t *testing.T, ta, tb func(*cluster.Config)) (a, b *cluster.TCP) {
	t.Helper()
	clustertest.CheckLeaks(t)
	addrs := freeLoopbackAddrs(t, 2)
	trs := startTCP(t, []cluster.NodeID{"a", "b"}, nil, func(i int) string { return addrs[i] }, func(c *cluster.Config) {
		if c.ID == "a" && ta != nil {
			ta(c)
		}
		if c.ID == "b" && tb != nil {
			tb(c)
		}
	})
	return trs[0], trs[1]
}

// assertRefused checks that a and b never come up and that nothing b sends
// reaches a, once a has counted a refused handshake.
func assertRefused(t *testing.T, a, b *cluster.TCP, counter func(cluster.Stats) uint64) {
	t.Helper()
	var got atomic.Int64
	a.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(cluster.Message) { got.Add(1) }))
	clustertest.Eventually(t, 5*time.Second, func() bool {
		return counter(a.Stats()) > 0 || counter(b.Stats()) > 0
	}, "no refused handshake counted")
	for i := 0; i < 20; i++ {
		b.Send("a", cluster.ChannelUser, []byte("should not arrive"))
		time.Sleep(10 * time.Millisecond)
	}
	for _, tr := range []*cluster.TCP{a, b} {
		for _, m := range tr.Members() {
			if m.State == cluster.StateUp {
				t.Fatalf("%s sees %s up through a refused handshake", tr.LocalID(), m.ID)
			}
		}
	}
	if got.Load() != 0 {
		t.Fatalf("%d messages crossed a refused handshake", got.Load())
	}
}

func auths(s cluster.Stats) uint64      { return s.AuthFailures }
func handshakes(s cluster.Stats) uint64 { return s.HandshakeFailures }

func TestNoAuthNeedsInsecure(t *testing.T) {
	_, err := cluster.NewTCP(context.Background(), cluster.Config{ID: "a", Listen: "127.0.0.1:0"})
	if !errors.Is(err, cluster.ErrNoAuth) {
		t.Fatalf("NewTCP without auth returned %v, want ErrNoAuth", err)
	}
	tr, err := cluster.NewTCP(context.Background(), cluster.Config{ID: "a", Listen: "127.0.0.1:0", Insecure: true})
	if err != nil {
		t.Fatalf("NewTCP with Insecure: %v", err)
	}
	tr.Close()
}

func TestConfigValidate(t *testing.T) {
	bad := []cluster.Config{
		{Listen: "127.0.0.1:0", Insecure: true},                                                 // no ID
		{ID: "a", Insecure: true},                                                               // no Listen
		{ID: "a", Listen: "x:1", Secret: []byte("short")},                                       // short secret
		{ID: "a", Listen: "x:1", Insecure: true, Peers: []cluster.Peer{{ID: "a", Addr: "y:1"}}}, // self as peer
		{ID: "a", Listen: "x:1", Insecure: true, Peers: []cluster.Peer{{ID: "b"}}},              // no addr
		{ID: "a", Listen: "x:1", Insecure: true, Profile: cluster.Profile{HeartbeatInterval: time.Second, SuspectTimeout: time.Second}},
		{ID: "a", Listen: "x:1", Insecure: true, MaxMessageSize: 1 << 20, QueueBytes: 1 << 10},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d: Validate accepted %+v", i, c)
		}
	}
	if err := (cluster.Config{ID: "a", Listen: "x:1", Insecure: true}).Validate(); err != nil {
		t.Fatalf("minimal config refused: %v", err)
	}
	for _, p := range []cluster.Profile{cluster.LAN(), cluster.WAN()} {
		if err := p.Validate(); err != nil {
			t.Fatalf("built-in profile invalid: %v", err)
		}
	}
}

func TestWrongSecretRefused(t *testing.T) {
	a, b := pair(t, nil, func(c *cluster.Config) { c.Secret = []byte("another-secret-of-the-same-length!") })
	assertRefused(t, a, b, auths)
}

func TestSecretAgainstInsecureRefused(t *testing.T) {
	a, b := pair(t, nil, func(c *cluster.Config) { c.Secret = nil; c.Insecure = true })
	assertRefused(t, a, b, auths)
}

func TestWrongClusterRefused(t *testing.T) {
	a, b := pair(t, nil, func(c *cluster.Config) { c.ClusterName = "other" })
	assertRefused(t, a, b, handshakes)
}

func TestVersionNegotiation(t *testing.T) {
	// Each pair runs in a subtest of its own, so its leak check covers it alone.
	t.Run("older beside newer", func(t *testing.T) {
		// A newer build (1..2) beside an older one (1..1): both speak 1.
		a, b := pair(t, func(c *cluster.Config) { cluster.SetProtocolRange(c, 1, 2) }, nil)
		clustertest.WaitUp(t, asTransports([]*cluster.TCP{a, b}))
		for _, tr := range []*cluster.TCP{a, b} {
			if v := tr.Members()[0].Version; v != 1 {
				t.Fatalf("%s negotiated version %d, want 1", tr.LocalID(), v)
			}
		}
	})
	t.Run("two newer", func(t *testing.T) {
		c, d := pair(t, func(c *cluster.Config) { cluster.SetProtocolRange(c, 1, 2) }, func(c *cluster.Config) { cluster.SetProtocolRange(c, 1, 2) })
		clustertest.WaitUp(t, asTransports([]*cluster.TCP{c, d}))
		if v := c.Members()[0].Version; v != 2 {
			t.Fatalf("two 1..2 nodes negotiated %d, want 2", v)
		}
	})
}

func TestIncompatibleVersionRefused(t *testing.T) {
	a, b := pair(t, func(c *cluster.Config) { cluster.SetProtocolRange(c, 2, 3) }, nil)
	assertRefused(t, a, b, handshakes)
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	a, b := pair(t,
		func(c *cluster.Config) { c.Secret = nil; c.TLS = ca.tlsFor(t, "a") },
		func(c *cluster.Config) { c.Secret = nil; c.TLS = ca.tlsFor(t, "b") })
	clustertest.WaitUp(t, asTransports([]*cluster.TCP{a, b}))
	var got atomic.Int64
	a.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(cluster.Message) { got.Add(1) }))
	b.Send("a", cluster.ChannelUser, []byte("over tls"))
	clustertest.Eventually(t, 5*time.Second, func() bool { return got.Load() == 1 }, "message over mTLS not delivered")
}

func TestMutualTLSWithSecret(t *testing.T) {
	ca := newTestCA(t)
	a, b := pair(t, func(c *cluster.Config) { c.TLS = ca.tlsFor(t, "a") }, func(c *cluster.Config) { c.TLS = ca.tlsFor(t, "b") })
	clustertest.WaitUp(t, asTransports([]*cluster.TCP{a, b}))
}

func TestTLSCertificateMustNameNode(t *testing.T) {
	ca := newTestCA(t)
	// b holds a valid certificate of the cluster CA, but for node "c".
	a, b := pair(t,
		func(c *cluster.Config) { c.Secret = nil; c.TLS = ca.tlsFor(t, "a") },
		func(c *cluster.Config) { c.Secret = nil; c.TLS = ca.tlsFor(t, "c") })
	assertRefused(t, a, b, auths)
}

func TestTLSForeignCARefused(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	a, b := pair(t,
		func(c *cluster.Config) { c.Secret = nil; c.TLS = ca.tlsFor(t, "a") },
		func(c *cluster.Config) {
			c.Secret = nil
			c.TLS = other.tlsFor(t, "b")
			c.TLS.RootCAs = ca.pool // b trusts a, but a does not trust b's issuer
		})
	assertRefused(t, a, b, auths)
}
