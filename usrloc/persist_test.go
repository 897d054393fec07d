package usrloc

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

func TestPersistRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usrloc.db")
	s1 := newTestStore(t, Config{Node: "n1"})
	p1, err := OpenPersister(s1, PersistConfig{Path: path, FlushInterval: 10 * time.Millisecond, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	keep := contact("sip:keep@192.0.2.1", time.Hour)
	keep.Instance, keep.RegID, keep.Q, keep.Path = "<urn:uuid:k>", 2, 700, "<sip:edge;lr>"
	s1.Register(reg("sip:a@x", "c1", 1, keep), nil)
	s1.Register(reg("sip:b@x", "c2", 1, contact("sip:gone@192.0.2.2", time.Hour)), nil)
	s1.Register(reg("sip:b@x", "c2", 2, contact("sip:gone@192.0.2.2", 0)), nil)
	s1.Register(reg("sip:c@x", "c3", 1, contact("sip:short@192.0.2.3", 50*time.Millisecond)), nil)
	time.Sleep(50 * time.Millisecond)
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p1.Stats(); st.Written == 0 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	want := s1.Lookup("sip:a@x", nil)[0]
	s1.Close()
	time.Sleep(60 * time.Millisecond) // the short binding expires while "down"

	s2 := newTestStore(t, Config{Node: "n1"})
	p2, err := OpenPersister(s2, PersistConfig{Path: path, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	got := s2.Lookup("sip:a@x", nil)
	if len(got) != 1 || s2.Len() != 1 {
		t.Fatalf("reloaded %d bindings: %+v (%+v, first %+v)", s2.Len(), got, p2.Stats(), p1.Stats())
	}
	g := got[0]
	if g.Contact != want.Contact || g.Instance != want.Instance || g.RegID != 2 || g.Q != 700 || g.Path != want.Path ||
		g.Version != want.Version || g.Node != "n1" || g.CallID != "c1" || g.UserAgent != "ua/1" {
		t.Fatalf("reloaded %+v\nwant %+v", g, want)
	}
	if d := g.Expires.Sub(want.Expires); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("expiry moved by %v", d)
	}
}

func TestPersistRejectsBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte("not a bolt file at all, not at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, Config{})
	if _, err := OpenPersister(s, PersistConfig{Path: path, Logger: clustertest.Logger(t)}); err == nil {
		t.Fatal("opened a junk file")
	}
	if _, err := OpenPersister(s, PersistConfig{}); err == nil {
		t.Fatal("opened without a path")
	}
}

// TestPersistThenJoinNewerWins: a node restarts from its file, then syncs
// from the cluster: the cluster's newer version of a binding replaces the
// file's, a binding only the file had is kept and reaches the peer, and one
// only the cluster had arrives.
func TestPersistThenJoinNewerWins(t *testing.T) {
	clustertest.CheckLeaks(t)
	path := filepath.Join(t.TempDir(), "n1.db")
	// n1's earlier life: A (old version) and B, written to its file.
	s0, _ := New(Config{Node: "n1", Logger: clustertest.Logger(t)})
	p0, err := OpenPersister(s0, PersistConfig{Path: path, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := contact("sip:a@192.0.2.1", time.Hour)
	a.UserAgent = "old"
	s0.Register(reg("sip:a@x", "n1-call", 1, a), nil)
	s0.Register(reg("sip:b@x", "n1-call", 1, contact("sip:b@192.0.2.2", time.Hour)), nil)
	time.Sleep(20 * time.Millisecond) // the watcher hands the changes over
	p0.Close()
	s0.Close()
	time.Sleep(5 * time.Millisecond)

	nw := clustertest.NewNetwork(21)
	defer nw.Close()
	ids := nodeIDs(2)
	n2 := startNode(t, nw, ids[1:], 0, ReplicatorConfig{NoJoin: true, AntiEntropyInterval: 200 * time.Millisecond})
	a.UserAgent = "new"
	n2.st.Register(reg("sip:a@x", "n2-call", 1, a), nil) // newer: a later write elsewhere
	n2.st.Register(reg("sip:c@x", "n2-call", 1, contact("sip:c@192.0.2.3", time.Hour)), nil)

	// n1 restarts: file first, then the join.
	host := nw.Host("n1")
	tr, err := cluster.NewTCP(t.Context(), cluster.Config{ID: "n1", Listen: "n1:7946", Peers: []cluster.Peer{{ID: "n2", Addr: "n2:7946"}},
		Secret: testSecret, Network: host, Now: host.Now, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := New(Config{Node: "n1", Logger: clustertest.Logger(t)})
	p1, err := OpenPersister(s1, PersistConfig{Path: path, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Len() != 2 {
		t.Fatalf("file gave %d bindings", s1.Len())
	}
	rp, err := NewReplicator(s1, tr, ReplicatorConfig{AntiEntropyInterval: 200 * time.Millisecond, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n1 := &node{id: "n1", tr: tr, st: s1, rp: rp}
	defer func() { n1.close(); p1.Close() }()
	waitSynced(t, n1, 10*time.Second)
	if got := s1.Lookup("sip:a@x", nil); len(got) != 1 || got[0].UserAgent != "new" {
		t.Fatalf("A on n1: %+v", got)
	}
	if len(s1.Lookup("sip:c@x", nil)) != 1 || len(s1.Lookup("sip:b@x", nil)) != 1 {
		t.Fatal("n1 misses B or C")
	}
	clustertest.Eventually(t, 5*time.Second, func() bool { return len(n2.st.Lookup("sip:b@x", nil)) == 1 }, "B from n1's file never reached n2")
	clustertest.Eventually(t, 5*time.Second, func() bool { return converged(n1, n2) }, "not converged")
}

// TestPersistStaleFilePruned: a node comes back from a file older than the
// tombstone lifetime. A binding the cluster deleted meanwhile (and whose
// tombstone it has purged) must not come back from the file; bindings the
// cluster still has, and ones written after the file, are kept.
func TestPersistStaleFilePruned(t *testing.T) {
	clustertest.CheckLeaks(t)
	const ttl = time.Second
	path := filepath.Join(t.TempDir(), "n1.db")
	s0, _ := New(Config{Node: "n1", TombstoneTTL: ttl, Logger: clustertest.Logger(t)})
	p0, err := OpenPersister(s0, PersistConfig{Path: path, FlushInterval: 10 * time.Millisecond, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s0.Register(reg("sip:kept@x", "c", 1, contact("sip:kept@192.0.2.1", time.Hour)), nil)
	s0.Register(reg("sip:deleted@x", "c", 1, contact("sip:deleted@192.0.2.2", time.Hour)), nil)
	time.Sleep(30 * time.Millisecond)
	p0.Close()
	s0.Close()

	nw := clustertest.NewNetwork(22)
	defer nw.Close()
	n2 := startNodeStore(t, nw, []cluster.NodeID{"n2"}, 0, Config{TombstoneTTL: ttl}, ReplicatorConfig{NoJoin: true})
	// n2 holds "kept" (it was replicated before n1 went down) but not
	// "deleted": un-registered while n1 was down, tombstone long purged.
	n2.st.Register(reg("sip:kept@x", "c", 1, contact("sip:kept@192.0.2.1", time.Hour)), nil)
	n2.st.Register(reg("sip:new@x", "c", 1, contact("sip:new@192.0.2.3", time.Hour)), nil)
	time.Sleep(ttl + 200*time.Millisecond) // n1 stays down longer than the tombstone lifetime

	host := nw.Host("n1")
	tr, err := cluster.NewTCP(t.Context(), cluster.Config{ID: "n1", Listen: "n1:7946", Peers: []cluster.Peer{{ID: "n2", Addr: "n2:7946"}},
		Secret: testSecret, Network: host, Now: host.Now, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := New(Config{Node: "n1", TombstoneTTL: ttl, Logger: clustertest.Logger(t)})
	p1, err := OpenPersister(s1, PersistConfig{Path: path, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s1.Len() != 2 || p1.LastWritten().IsZero() {
		t.Fatalf("file gave %d bindings, written %v", s1.Len(), p1.LastWritten())
	}
	rp, err := NewReplicator(s1, tr, ReplicatorConfig{StateAsOf: p1.LastWritten(), AntiEntropyInterval: 100 * time.Millisecond, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n1 := &node{id: "n1", tr: tr, st: s1, rp: rp}
	defer func() { n1.close(); p1.Close() }()
	waitSynced(t, n1, 10*time.Second)
	if len(s1.Lookup("sip:deleted@x", nil)) != 0 {
		t.Fatalf("a binding deleted while n1 was down came back from its file: %+v", n1.rp.Stats())
	}
	if len(s1.Lookup("sip:kept@x", nil)) != 1 || len(s1.Lookup("sip:new@x", nil)) != 1 {
		t.Fatal("n1 lost a binding the cluster has")
	}
	time.Sleep(500 * time.Millisecond) // anti-entropy rounds
	if len(n2.st.Lookup("sip:deleted@x", nil)) != 0 || !converged(n1, n2) {
		t.Fatal("the deleted binding reached n2, or the nodes differ")
	}
	if st := n1.rp.Stats(); st.Pruned != 1 {
		t.Fatalf("pruned %d, want 1: %+v", st.Pruned, st)
	}
}
