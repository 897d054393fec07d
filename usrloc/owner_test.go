package usrloc

import (
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
)

// TestPingerFollowsRaftOwnership: on a real 3-node Raft ownership cluster,
// only the holder of a socket's resource pings the bindings registered
// through it; when the holder dies, the node that acquires the resource
// starts pinging within one interval.
func TestPingerFollowsRaftOwnership(t *testing.T) {
	clustertest.CheckLeaks(t)
	ids := []cluster.NodeID{"n1", "n2", "n3"}
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: ids, Seed: 1})
	const socket = "udp:198.51.100.10:5060"
	c.Ensure(ownership.Spec{Name: "socket/" + socket, Candidates: ids, Policy: ownership.Sticky})
	holder, _ := c.WaitHolder("socket/"+socket, 10*time.Second, func(id cluster.NodeID) bool { return id == "n1" })

	const interval = 200 * time.Millisecond
	logs := map[cluster.NodeID]*pingLog{}
	for _, id := range ids {
		// Each node's store holds the binding, as replication would make it.
		s := newTestStore(t, Config{Node: id})
		b := contact("sip:alice@192.0.2.1:5060", time.Hour)
		b.Socket = socket
		if _, err := s.Register(reg("sip:alice@example.com", "call-1", 1, b), nil); err != nil {
			t.Fatal(err)
		}
		log := &pingLog{at: map[string][]time.Time{}, fail: map[string]bool{}}
		logs[id] = log
		p, err := NewPinger(s, PingerConfig{Owner: ManagerOwner(c.Node(id), ""), Send: log.send, Interval: interval})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
	}
	const uri = "sip:alice@192.0.2.1:5060"
	ownershiptest.WaitFor(t, 5*time.Second, "the holder pings", func() bool { return logs[holder].count(uri) >= 2 })
	for _, id := range ids {
		if id != holder && logs[id].count(uri) != 0 {
			t.Fatalf("%s pinged a binding whose socket %s holds", id, holder)
		}
	}

	c.Kill(holder)
	next, _ := c.WaitHolder("socket/"+socket, 10*time.Second, func(id cluster.NodeID) bool { return id != holder })
	acquired := time.Now()
	ownershiptest.WaitFor(t, 5*time.Second, "the new holder pings", func() bool { return logs[next].count(uri) > 0 })
	first, _ := logs[next].first(uri)
	if d := first.Sub(acquired); d > interval+100*time.Millisecond {
		t.Errorf("the new holder %s first pinged %v after acquiring, want within one interval (%v)", next, d, interval)
	}
	for _, id := range ids {
		if id != holder && id != next && logs[id].count(uri) != 0 {
			t.Fatalf("%s, which never held the socket, pinged", id)
		}
	}
}
