// Package ownershiptest runs an N-node raftowner cluster in one process on
// clustertest's in-memory network, with the production cluster.TCP
// transport and Raft over its stream multiplexer, and records a history of
// owner actions to check that no two nodes ever held one resource at once.
//
//	c := ownershiptest.New(t, ownershiptest.Config{Nodes: []cluster.NodeID{"n1", "n2", "n3"}})
//	c.Ensure(ownership.Spec{Name: "vip/a"})
//	h := ownershiptest.NewHistory()
//	a := ownershiptest.StartActors(c, h, []string{"vip/a"}, 0, seed)
//	c.Net.Blackhole("n1") // hosts are named after the nodes
//	...
//	a.Stop()
//	if v := h.Violations(); len(v) > 0 { t.Fatal(v) }
//
// Node data lives in t.TempDir() (raft-boltdb), so Kill and Start model a
// process crash and restart with the same data directory.
package ownershiptest
