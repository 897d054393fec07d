// Package cluster is sipha's one message layer: node identity, the pluggable
// [Transport] every block replicates over, peer liveness, and the production
// TCP implementation.
//
// A node is started with [Start] (or [NewTCP]); blocks are constructed with
// the returned transport and register a [Handler] on their own [Channel]:
//
//	tr, err := cluster.NewTCP(ctx, cluster.Config{
//		ID:     "n1",
//		Listen: "10.0.0.1:7946",
//		Peers:  []cluster.Peer{{ID: "n2", Addr: "10.0.0.2:7946"}},
//		Secret: []byte(os.Getenv("SIPHA_SECRET")),
//	})
//	tr.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(m cluster.Message) { ... }))
//	tr.Broadcast(cluster.ChannelUser, []byte("hello"))
//
// The delivery contract (per-peer FIFO, never blocking the sender, sequence
// numbers that expose every gap, at-most-once per connection) is written on
// [Transport]; package clustertest checks it for any implementation with
// clustertest.RunTransport and supplies an in-memory [Network] with fault
// injection on which the real TCP transport (and Raft) run unchanged.
//
// The cluster port never accepts an unauthenticated peer: either mutual TLS
// with the node ID bound to the certificate, or a shared secret proved by
// challenge–response in the handshake. Running with neither needs
// Config.Insecure.
package cluster
