// Package sipha is a library of high-availability building blocks for
// SIP/VoIP applications written in Go, most often proxies and PBX back ends
// built on github.com/emiago/sipgo.
//
// Each block is a package that is useful alone; together they turn one SIP
// box into a cluster that survives the loss of any node without losing
// registrations, call counts, rate limits, CDRs or the public IP address.
//
// Two shared layers carry the blocks:
//
//   - cluster: node identity, liveness and the one pluggable Transport that
//     every block replicates its state over (contacts, dialogs, counters).
//     Its TCP implementation authenticates every peer, never blocks a sender,
//     and numbers messages so a block sees every gap and asks for a repair.
//   - ownership: who owns which named resource ("vip/198.51.100.10",
//     "node/n2", "tenant/acme"), decided by Raft, with epochs that fence
//     stale owners and leases that make a cut-off owner stop acting before
//     anyone else starts. Raft decides ownership only; per-call and
//     per-registration data never goes through the Raft log.
//
// The blocks:
//
//   - usrloc: a replicated location store and RFC 3261 registrar handler for
//     sipgo; only the owner of a binding's socket sends NAT keepalives.
//   - dialog: dialog tracking with cluster-wide profile counters that never
//     drift below zero and survive the loss of the node that counted them.
//   - ratelimit: a calls-per-second limiter whose limit holds for the whole
//     cluster while every node admits locally.
//   - partition: consistent-hash placement of tenants on nodes, with ordered
//     standbys and spare nodes.
//   - vip: a floating IP address that follows the owner of a resource.
//   - dnssrv: an RFC 3263 NAPTR/SRV/A resolver with RFC 2782 weighted order
//     and failover, so a client finds a live server.
//   - cdr: a CDR poster with a durable spool and failover URLs, so no CDR is
//     lost.
//
// A block imports the cluster and ownership interfaces, never another block
// and never hashicorp/raft: a program that needs only dnssrv or cdr pulls in
// neither layer.
//
// Package cluster/clustertest runs the real transport over an in-memory
// network with partitions, one-way cuts, blackholes, delay, kills and clock
// skew, for sipha's own tests and for yours.
package sipha
