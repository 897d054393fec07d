// Package siphatest runs a whole sipha cluster inside one test: N nodes,
// each with the cluster transport, the Raft ownership layer and every block
// wired to them, on clustertest's in-memory network with its fault
// injection, stopped and checked for leaked goroutines when the test ends.
// It is for users testing their own SIP logic against node failures,
// partitions and restarts, the way net/http/httptest is for handlers.
//
//	func TestTenantLimitSurvivesFailover(t *testing.T) {
//		c := siphatest.NewCluster(t, 3, siphatest.Options{})
//		n1 := c.Node("n1")
//		n1.Dialogs.Begin(id)                        // dialog.Tracker
//		c.Kill("n1")                                // crash: no goodbye, no handover
//		c.Eventually("n2 took n1's dialogs", func() bool { ... })
//		c.Restart("n1")                             // same data dir and CDR spool
//		if err := c.WaitReady(ctx); err != nil { t.Fatal(err) }
//	}
//
// # What each node runs
//
// Every [Node] has its [cluster.TCP] transport (the production one, on a
// host of the in-memory network named after the node: "n1:7946") and its
// raftowner.Node on the same port, with LAN timings and its Raft data in
// the test's temporary directory. On top, unless Options.Disable turns
// them off:
//
//   - Locations: a usrloc Store, its Replicator and a Registrar handler
//     (srv.OnRegister(n.Locations.Registrar.Handle)); with
//     Options.Keepalive, a Pinger that keeps only the socket's owner
//     pinging.
//   - Dialogs: a dialog.Tracker replicating over the transport, with the
//     node's ownership resource for takeover of a dead node's dialogs;
//     Options.OnTerminate attaches its terminate hook per node (a CDR
//     sink posting through the node's poster, as examples/demo does).
//   - Limiter: a ratelimit.Limiter in cluster mode with Options.Limits.
//   - Partitioner: a partition.Partitioner over the committed membership
//     (Options.Spares makes the last nodes spares).
//   - VIPs: a vip.Manager per node on viptest's recording fake backend,
//     shared by all nodes, so [Cluster.VIPLog] shows who had which address
//     up and flags any overlap.
//   - CDR: a cdr.Poster with its own spool, posting to a [Collector] the
//     cluster runs (cdr.Receiver on a real HTTP server on 127.0.0.1).
//
// # Faults
//
// [Cluster.Kill] crashes a node (its host drops off the network, its
// process stops with no goodbye; a VIP address it had stays up until its
// lifetime lapses, as in the kernel); [Cluster.Stop] stops one gracefully;
// [Cluster.Restart] brings either back on its data. [Cluster.Partition],
// [Cluster.Isolate] and [Cluster.Heal] cut the network; [Cluster.Network]
// gives the clustertest.Network itself for one-way cuts, delay, loss and
// clock skew. The network's seed is logged; Options.Seed replays it.
//
// Because a crashed holder's address outlives it by its lifetime, the
// harness raises raftowner's ReassignDelay to the VIP lifetime + 1 s (2 s)
// when the VIP block runs, as package vip advises for deployments where no
// overlap is acceptable; disable the VIP block for 200 ms takeovers.
//
// # Waiting
//
// [Cluster.WaitReady] waits for a settled cluster (an agreed leader, every
// node's lease, peers up, locations and dialogs synced, rate limiters in
// contact, one holder per VIP); NewCluster calls it. [Cluster.Eventually]
// polls a condition and fails the test with every node's view of the
// ownership table when it times out.
//
// # Outside tests
//
// NewCluster takes a [TB], which *testing.T and *testing.B satisfy.
// [Standalone] is a TB for programs (a demo) and Examples: Close runs the
// cleanups and returns the failures. Options.Loopback runs the nodes on
// real TCP over 127.0.0.1 instead of the in-memory network.
package siphatest
