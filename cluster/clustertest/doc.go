// Package clustertest fakes the network under sipha's cluster, so the
// production TCP transport (and hashicorp/raft on top of it) runs unchanged
// in tests while the test breaks the network at will.
//
// A [Network] holds named hosts. Each [Host] implements cluster.Network:
// give one to each node under test as the network it listens and dials on.
// A host's address is its name ("n1:7946"):
//
//	n := clustertest.NewNetwork(seed) // log the seed
//	defer n.Close()
//	h1, h2 := n.Host("n1"), n.Host("n2") // each is a cluster.Network
//	// start node n1 listening on "n1:7946" over h1, and n2 on "n2:7946" over h2
//	n.Partition([]string{"n1"}, []string{"n2"})
//	// ... assert what each side does, then
//	n.Heal()
//
// Connections behave like TCP between hosts: full-duplex byte streams,
// delivered in order after the link's delay, with a bounded in-flight buffer
// per direction that blocks writers, and net.Conn deadlines.
//
// Faults model what real networks do:
//   - [Network.Partition], [Network.Cut] (one way) and [Network.Blackhole]
//     drop packets: bytes written across them are held, not lost, and no
//     error is seen; writers block once the buffer is full; [Network.Heal]
//     delivers the held bytes in order. Dials across them hang until their
//     context ends.
//   - [Network.SetDelay] and [Network.SetLinkDelay] add one-way latency.
//   - [Network.SetDropRate] delays chunks by a retransmission timeout, chosen
//     by a random generator seeded from the Network's seed.
//   - [Network.Kill] is a process death: the host's connections fail and
//     their peers get ECONNRESET once the reset can cross the link; dials to
//     the host are refused until [Network.Restart].
//   - [Host.SetClock] skews and drifts one host's clock ([Host.Now]) for code
//     that takes an injected clock.
//
// Two choices go beyond what every TCP stack agrees on. A connection closed
// while some of its bytes are held loses them, and its peer gets a reset at
// Heal instead of a clean end of stream, so no peer mistakes a cut-short
// stream for a whole one. A dial completes after one round trip of link
// delay without waiting for Accept, as with a kernel's backlog.
//
// [Network.Stats] counts the bytes delivered and pending per link, so a test
// can assert that nothing crossed a partition.
//
// The network starts no goroutines: blocked calls wait on channels and
// timers. Created inside a testing/synctest bubble it runs on the bubble's
// fake clock, so tests of timeouts and delays are instant and exact.
//
// The package does not import package cluster, so cluster's own internal
// tests may use it without an import cycle.
//
// [CheckLeaks] is the goroutine-leak check for every package's tests: call it
// first in a test and it fails the test if goroutines started by the test
// outlive it.
package clustertest
