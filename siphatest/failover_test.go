package siphatest_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/siphatest"
	"github.com/sipha/sipha/usrloc"
	"github.com/sipha/sipha/vip/viptest"
)

// The VIP's holder goes, killed or stopped: the address moves to another
// node, and the recording fake, which keeps a crashed node's address up
// until its lifetime lapses as the kernel would, saw no moment with two
// holders. A crash removes nothing; a graceful stop releases the address
// before the next node puts it up.
func TestVIPMovesWithoutOverlap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		removes int
		leave   func(c *siphatest.Cluster, id cluster.NodeID) error
	}{
		{"kill", 0, func(c *siphatest.Cluster, id cluster.NodeID) error { c.Kill(id); return nil }},
		{"stop", 1, func(c *siphatest.Cluster, id cluster.NodeID) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return c.Stop(ctx, id)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := siphatest.NewCluster(t, 3, siphatest.Options{Disable: siphatest.BlockCDRs | siphatest.BlockPartitions})
			pfx := siphatest.DefaultVIP
			holders := c.VIPLog().Holders(pfx)
			if len(holders) != 1 {
				t.Fatalf("holders %v before the %s", holders, tc.name)
			}
			victim := cluster.NodeID(holders[0])
			before := len(c.VIPLog().Ops())
			leader := c.Leader()
			left := time.Now()
			if err := tc.leave(c, victim); err != nil {
				t.Fatal(err)
			}
			c.Eventually("the VIP up on a survivor", func() bool {
				h := c.VIPLog().Holders(pfx)
				return len(h) == 1 && h[0] != string(victim)
			})
			t.Logf("VIP moved from %s (Raft leader %s) to %v %v after the %s began", victim, leader,
				c.VIPLog().Holders(pfx), time.Since(left).Round(time.Millisecond), tc.name)
			if conf := c.VIPLog().Conflicts(); len(conf) > 0 {
				t.Fatalf("two holders at once: %v", conf)
			}
			removes := 0
			for _, o := range c.VIPLog().Ops()[before:] {
				if o.Node == string(victim) && o.Kind == viptest.OpRemove {
					removes++
				}
			}
			if removes != tc.removes {
				t.Fatalf("%s removed the address %d times after the %s, want %d", victim, removes, tc.name, tc.removes)
			}
		})
	}
}

// A node that was down while the cluster took registrations, calls and
// CDRs comes back on its own data: it rejoins Raft, pulls the bindings and
// dialogs it missed, and its spool delivers what it had posted.
func TestRestartRejoinsAndResyncs(t *testing.T) {
	c := siphatest.NewCluster(t, 3, siphatest.Options{Disable: siphatest.BlockVIPs | siphatest.BlockPartitions})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if code := register(t, c.Node("n1"), "alice", "sip:alice@192.0.2.4:5060", 1); code != 200 {
		t.Fatalf("REGISTER answered %d", code)
	}
	c.Eventually("alice on n3", func() bool { return len(contacts(c.Node("n3"), "sip:alice@example.com")) == 1 })
	c.Kill("n3")
	if c.Node("n3") != nil {
		t.Fatal("killed node still listed as running")
	}
	if code := register(t, c.Node("n2"), "bob", "sip:bob@192.0.2.5:5060", 1); code != 200 {
		t.Fatalf("REGISTER answered %d", code)
	}
	call := dialog.ID{CallID: "while-n3-down", FromTag: "x"}
	if err := c.Node("n1").Dialogs.Begin(call); err != nil {
		t.Fatal(err)
	}
	if err := c.Node("n1").Dialogs.AddProfile(call, "calls", "acme"); err != nil {
		t.Fatal(err)
	}

	n3 := c.Restart("n3")
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := contacts(n3, "sip:bob@example.com"); !slices.Equal(got, []string{"sip:bob@192.0.2.5:5060"}) {
		t.Fatalf("n3 after restart has bob at %v", got)
	}
	if got := contacts(n3, "sip:alice@example.com"); len(got) != 1 {
		t.Fatalf("n3 after restart has alice at %v", got)
	}
	if n := n3.Dialogs.Count("calls", "acme"); n != 1 {
		t.Fatalf("n3 counts %d calls after its sync, want 1", n)
	}
	if _, err := n3.CDR.Post(ctx, cdr.Record{ID: "after-restart"}); err != nil {
		t.Fatal(err)
	}
	c.Eventually("n3's CDR collected", func() bool { return c.Collector().Has("after-restart") })
}

// Partition, Isolate and Heal act on the in-memory network: an isolated
// node loses its lease, the others keep a leader, and after Heal the
// cluster is ready again.
func TestIsolateAndHeal(t *testing.T) {
	c := siphatest.NewCluster(t, 3, siphatest.Options{Disable: siphatest.AllBlocks})
	c.Isolate("n1")
	c.Eventually("n1's lease lapsing", func() bool { return !c.Node("n1").Ownership.Ready() })
	c.Eventually("a leader on the majority side", func() bool {
		l := c.Node("n2").Ownership.Leader()
		return (l == "n2" || l == "n3") && c.Node("n3").Ownership.Leader() == l
	})
	c.Heal()
	c.Partition([]cluster.NodeID{"n3"})
	c.Eventually("n3's lease lapsing", func() bool { return !c.Node("n3").Ownership.Ready() })
	c.Heal()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// Loopback runs the same wiring on real TCP over 127.0.0.1 (what the demo
// uses); Kill works there too.
func TestLoopback(t *testing.T) {
	c := siphatest.NewCluster(t, 3, siphatest.Options{Loopback: true, Disable: siphatest.BlockVIPs | siphatest.BlockPartitions})
	if c.Seed() != 0 || c.Node("n1").Addr[:10] != "127.0.0.1:" {
		t.Fatalf("seed %d, addr %s: not on loopback", c.Seed(), c.Node("n1").Addr)
	}
	if code := register(t, c.Node("n2"), "carol", "sip:carol@192.0.2.6:5060", 1); code != 200 {
		t.Fatalf("REGISTER answered %d", code)
	}
	c.Eventually("carol on n1", func() bool { return len(contacts(c.Node("n1"), "sip:carol@example.com")) == 1 })
	c.Kill("n2")
	c.Eventually("n1 seeing n2 down", func() bool {
		for _, m := range c.Node("n1").Transport.Members() {
			if m.ID == "n2" {
				return !m.State.Alive()
			}
		}
		return false
	})
}

// Options.Spares makes n3 a spare: it owns no tenant while the active
// nodes live, and takes the keys of the one that dies.
func TestSpareTakesDeadNodesTenants(t *testing.T) {
	c := siphatest.NewCluster(t, 3, siphatest.Options{Spares: 1, Disable: siphatest.AllBlocks &^ siphatest.BlockPartitions})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	p := c.Node("n1").Partitioner
	keys := []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example"}
	for _, k := range keys {
		if err := p.Add(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	pl, err := p.Placement()
	if err != nil {
		t.Fatal(err)
	}
	owned := map[cluster.NodeID][]string{}
	for _, k := range keys {
		want, _ := pl.Owner(k)
		owned[want] = append(owned[want], k)
		c.Eventually(k+" on its placed owner "+string(want), func() bool {
			h := c.Holders(p.Resource(k))
			return len(h) == 1 && h[0] == want
		})
	}
	if len(owned["n3"]) != 0 || len(owned["n1"]) == 0 {
		t.Fatalf("placement %v: the spare owns keys, or n1 none (try another key set)", owned)
	}
	p2 := c.Node("n2").Partitioner
	before := map[string]ownership.Claim{}
	for _, k := range owned["n2"] {
		before[k], _ = p2.Owner(k)
	}
	c.Kill("n1")
	for _, k := range owned["n1"] {
		c.Eventually(k+" on the spare", func() bool {
			h := c.Holders(p.Resource(k))
			return len(h) == 1 && h[0] == "n3"
		})
	}
	// n2's keys stay put: the same committed claim (owner and epoch). If
	// n1 led Raft, every lease lapsed during the election, so n2 may hold
	// them again only a moment later.
	for _, k := range owned["n2"] {
		c.Eventually(k+" held by n2 again", func() bool {
			h := c.Holders(p.Resource(k))
			return len(h) == 1 && h[0] == "n2"
		})
		if now, _ := p2.Owner(k); now != before[k] {
			t.Fatalf("%s moved from the live n2: %+v, then %+v", k, before[k], now)
		}
	}
}

// With Options.Keepalive every node runs a NAT keepalive pinger, and only
// the holder of a binding's socket resource pings it; when the holder
// dies the next one takes over.
func TestKeepalivesFollowTheSocketOwner(t *testing.T) {
	var mu sync.Mutex
	pings := map[cluster.NodeID]int{}
	count := func(id cluster.NodeID) int { mu.Lock(); defer mu.Unlock(); return pings[id] }
	c := siphatest.NewCluster(t, 3, siphatest.Options{Disable: siphatest.AllBlocks &^ siphatest.BlockLocations,
		Keepalive: func(_ context.Context, node cluster.NodeID, b usrloc.Binding) error {
			mu.Lock()
			defer mu.Unlock()
			pings[node]++
			return nil
		}})
	const sock = "udp:203.0.113.10:5060"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Node("n1").Ownership.Ensure(ctx, ownership.Spec{Name: "socket/" + sock}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Node("n2").Locations.Store.Register(usrloc.Registration{AOR: "sip:dave@example.com", CallID: "d", CSeq: 1,
		Contacts: []usrloc.ContactUpdate{{URI: "sip:dave@192.0.2.7:5060", Expires: time.Hour, Socket: sock, Received: "198.51.100.7:4000"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// holder waits for one holder of the socket other than not.
	holder := func(not cluster.NodeID) (id cluster.NodeID) {
		c.Eventually("a holder of the socket other than "+string(not), func() bool {
			h := c.Holders("socket/" + sock)
			if len(h) == 1 {
				id = h[0]
			}
			return len(h) == 1 && id != not
		})
		return id
	}
	first := holder("")
	c.Eventually(string(first)+" pinging dave", func() bool { return count(first) >= 3 })
	c.Kill(first)
	next := holder(first)
	c.Eventually(string(next)+" pinging dave", func() bool { return count(next) >= 3 })
	for _, id := range c.IDs() {
		if id != first && id != next && count(id) != 0 {
			t.Fatalf("%s, which never held the socket, sent %d keepalives", id, count(id))
		}
	}
}
