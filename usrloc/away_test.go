package usrloc

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// TestAwayLongerThanTombstoneTTL: n1 is cut off for longer than the
// tombstone lifetime while n2 deletes a binding (its tombstone is purged
// before the heal, and the message carrying it is lost with the broken
// connection). After the heal the deletion must hold: n1 resyncs in full
// and drops what was deleted while it was away, n2 and n3 refuse n1's
// stale version, and what each side wrote during the partition survives.
func TestAwayLongerThanTombstoneTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clustertest.CheckLeaks(t)
		nw := clustertest.NewNetwork(77)
		defer nw.Close()
		ids := nodeIDs(3)
		const ttl = 3 * time.Second
		var nodes []*node
		for i := range ids {
			nodes = append(nodes, startNodeTTL(t, nw, ids, i, ttl))
		}
		clustertest.WaitUp(t, []cluster.Transport{nodes[0].tr, nodes[1].tr, nodes[2].tr})
		registerN(t, nodes[0], 0, 20, "a") // user0..user19, user5 will be deleted
		clustertest.Eventually(t, 2*time.Second, func() bool { return converged(nodes...) }, "seed")
		time.Sleep(2 * time.Second) // anti-entropy rounds: every node has heard every other

		nw.Partition([]string{"n1"}, []string{"n2", "n3"})
		deleted := "sip:user5@example.com"
		b := nodes[1].st.Lookup(deleted, nil)[0]
		if _, err := nodes[1].st.Register(reg(deleted, "del", 1, contact(b.Contact, 0)), nil); err != nil {
			t.Fatal(err)
		}
		registerN(t, nodes[1], 100, 3000, "b") // enough to fill the held link and break it
		registerN(t, nodes[0], 5000, 5010, "a")
		time.Sleep(ttl + 2*time.Second) // n2's tombstone is purged
		if c, _ := nodes[1].st.bucketDigest(bucketOf(deleted)); len(nodes[1].st.Lookup(deleted, nil)) != 0 {
			t.Fatalf("deleted binding back on n2 before the heal (bucket count %d)", c)
		}
		nw.Heal()
		clustertest.Eventually(t, 20*time.Second, func() bool { return converged(nodes...) }, "not converged after heal")
		for _, n := range nodes {
			if got := n.st.Lookup(deleted, nil); len(got) != 0 {
				for _, m := range nodes {
					t.Logf("%s %+v", m.id, m.rp.Stats())
				}
				t.Fatalf("%s: the deleted binding came back: %+v", n.id, got)
			}
			for _, aor := range []string{"sip:user6@example.com", "sip:user5005@example.com", "sip:user2999@example.com"} {
				if len(n.st.Lookup(aor, nil)) != 1 {
					t.Fatalf("%s lost %s", n.id, aor)
				}
			}
		}
		s1 := nodes[0].rp.Stats()
		if s1.Resyncs == 0 {
			t.Fatalf("n1 did not resync after its absence: %+v", s1)
		}
		t.Logf("n1 %+v", s1)
		t.Logf("n2 %+v", nodes[1].rp.Stats())
	})
}

func startNodeTTL(t *testing.T, nw *clustertest.Network, ids []cluster.NodeID, i int, ttl time.Duration) *node {
	t.Helper()
	return startNodeStore(t, nw, ids, i, Config{TombstoneTTL: ttl},
		ReplicatorConfig{NoJoin: true, AntiEntropyInterval: time.Second, ChunkBytes: 16 << 10, BatchBytes: 8 << 10}, smallQueues)
}
