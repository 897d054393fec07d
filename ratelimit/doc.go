// Package ratelimit limits calls per second per named pipe (a tenant, a
// trunk, a source IP), on one node or for a whole cluster.
//
// A [Limiter] makes a pipe the first time it is named, with the limit that
// Config.Limits, Config.Pipes or Config.Default gives it, and forgets it
// after Config.IdleTimeout without calls. Each pipe runs one [Algorithm]:
// a token bucket (the default, lock-free, with [Limiter.Reserve] and
// [Limiter.Wait] for a B2BUA that queues calls instead of rejecting them),
// the same bucket with random early drop (RED), a sliding window, or
// OpenSIPS' fixed-window TAILDROP.
//
//	lim, err := ratelimit.New(ratelimit.Config{
//		Pipes:   map[string]ratelimit.Limit{"tenant-a": {Rate: 50}}, // calls/s
//		Default: ratelimit.Limit{Rate: 10},
//	})
//	if lim.Allow(tenant) { ... }
//
// [Middleware] puts a limiter in front of a sipgo handler: an initial
// request over its pipe's limit gets 503 with Retry-After, and in-dialog
// requests always pass.
//
// # Cluster mode
//
// With Config.Transport set, each pipe's limit is for the whole cluster.
// Every node still decides alone, with no network round trip on the call
// path; every Interval (100 ms) it broadcasts its demand per pipe (calls
// asked for, admitted or not, exponentially smoothed) on
// cluster.ChannelRatelimit, and sets its own share of each limit in
// proportion to its demand, so a node whose peer is saturated still gets
// its part (unlike OpenSIPS' replicated TAILDROP, where a node that sees
// its peer's counter at the limit rejects all of its own calls). Every
// member of the transport is expected to run a limiter: one that never
// speaks on the channel is treated as a silent node.
//
// Nodes that cannot hear each other cannot tell a dead peer from a
// partition. With T = Config.Silence (default 300 ms) and ε =
// Config.ClockDrift (default 0.2):
//
//   - a node counts its own demand as of the newest round all its peers
//     acknowledged, so it grows only after they saw it grow;
//   - a node that has heard nothing from a peer for T holds at most its
//     last agreed share (a new pipe: limit ÷ known nodes);
//   - a node that has heard nothing from a peer for T × (1+ε) takes the
//     peer's share back, if it and the peers it heard from within that time
//     are a majority of the known nodes (half with the lowest node ID breaks
//     a tie); a minority keeps its safe share until the partition heals;
//   - a node that starts takes only a small floor until every peer has
//     acknowledged it, and counts a peer it never heard from as silent only
//     after Config.JoinGrace (2 s).
//
// So a dead node's share returns to the survivors within about
// T × (1+ε) + 2 × Interval (under 600 ms by default), a node that stops
// gracefully (Close) hands it over at once, and during a partition the
// cluster admits at most the limit plus the minority side's safe shares.
// A two-node cluster split in two keeps the lower node ID at the full limit
// and the other at its safe share. The details and their reasons are on
// the clusterState type in cluster.go.
//
// The demand messages have a version byte and a compact varint encoding
// (see wire.go); a round with many pipes is split into messages of at most
// Config.MaxMessageBytes.
package ratelimit
