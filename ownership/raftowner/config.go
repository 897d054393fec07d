package raftowner

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Profile is a set of timing defaults.
type Profile uint8

const (
	// LAN: nodes one switch apart. Raft heartbeat timeout 100 ms, lease
	// 150 ms, reassignment after 150×(1+0.01)+50 = 201.5 ms of silence.
	LAN Profile = iota
	// WAN: nodes in different sites. Raft heartbeat timeout 1 s, lease
	// 1.5 s, reassignment after 1.5×1.01+0.5 = 2.015 s.
	WAN
)

// Peer is a node of the static bootstrap list.
type Peer struct {
	ID cluster.NodeID
	// Addr is the node's cluster address (Raft's ServerAddress).
	Addr string
	// NonVoter makes the node a Raft non-voter: it follows the log but
	// does not count for quorum.
	NonVoter bool
}

// Config configures a Node. The zero value of each field means its
// default; ID is required.
//
// Safety rests on two assumptions about the machines, which the operator
// states here:
//   - ClockDrift (ε): over any interval, the ratio between the time two
//     nodes' clocks measure differs from 1 by at most ε. Crystal clocks
//     drift by about 1e-4; NTP slewing adds at most 5e-4. Default 0.01.
//   - MaxPause (P): no node stops running for longer than P without
//     noticing it (GC, VM steal, SIGSTOP); this also bounds the time
//     between a Held check and the action it allows. Default: LAN 50 ms,
//     WAN 500 ms.
//
// An owner holds its resources for Lease from the moment it sent a renewal
// that the leader acknowledged; the leader hands a node's resources on only
// after ReassignDelay ≥ Lease×(1+ε)+P without acknowledging it (measured
// from the later of that last acknowledgement and its takeover point: a
// moment surely after every renewal an earlier leader acknowledged, see
// takeover.go), so the old owner has stopped before the new one starts.
// Validate enforces the inequality.
type Config struct {
	ID cluster.NodeID
	// Addr is this node's cluster address, Raft's ServerAddress.
	Addr string
	// Role is this node's part: RoleNode (default), RoleSpare or
	// RoleArbiter.
	Role Role
	// Weight is this node's share of placed resources relative to a node
	// of weight 1, published in the committed membership
	// (ownership.Member.Weight) for placement functions. Zero means 1.
	Weight float64
	// DataDir holds the Raft log, stable store (raft-boltdb) and
	// snapshots. Empty keeps them in memory (tests): state dies with the
	// process.
	DataDir string
	// Peers is the static bootstrap list, this node included. A node whose
	// DataDir has no Raft state bootstraps the cluster from it; all nodes
	// of a new cluster must list the same peers. Empty with Join set:
	// join a running cluster instead.
	Peers []Peer
	// Join asks the leader (reached through JoinAddrs' nodes) to add this
	// node instead of bootstrapping.
	Join bool
	// JoinVia lists nodes to send the join request to.
	JoinVia []cluster.NodeID

	Profile Profile
	// Raft timing; zero means the profile's value. Raft requires
	// LeaderLeaseTimeout ≤ HeartbeatTimeout ≤ ElectionTimeout. Defaults:
	// ElectionTimeout and LeaderLeaseTimeout equal HeartbeatTimeout. (A
	// leader steps down when a quorum has not answered within
	// LeaderLeaseTimeout; raft's own default of half the heartbeat made a
	// loaded machine start 2–5× as many needless elections, see
	// BenchmarkIdleElections. Safety does not rest on it: leases are
	// confirmed by quorum rounds.)
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// Lease is how long a renewal acknowledged by the leader lets a node
	// act as owner, from when it sent the renewal. It renews every
	// Lease/4. Default: LAN 150 ms, WAN 1.5 s.
	Lease time.Duration
	// ClockDrift is ε (see above). Default 0.01.
	ClockDrift float64
	// MaxPause is P (see above).
	MaxPause time.Duration
	// ReassignDelay defaults to Lease×(1+ClockDrift)+MaxPause and may not
	// be smaller.
	ReassignDelay time.Duration
	// HoldDown is the default hold-down of Preferred and Placed resources:
	// a returning candidate must stay eligible this long before it takes a
	// resource back. Default 10×Lease.
	HoldDown time.Duration
	// SnapshotThreshold is the number of log entries between snapshots.
	// Default 1024.
	SnapshotThreshold uint64

	// Now is the clock for leases; default time.Now. Leases compare only
	// readings of this one clock on this one node, so its offset from
	// other nodes does not matter, but it must be monotonic: a step
	// backwards would stretch a lease. time.Now's readings carry Go's
	// monotonic clock; an injected clock may drift in rate (within
	// ClockDrift) but must never jump.
	Now    func() time.Time
	Logger *slog.Logger
}

// Sentinel errors of raftowner.
var (
	ErrConfig    = errors.New("raftowner: invalid config")
	ErrNotLeader = errors.New("raftowner: not the leader")
	ErrTimeout   = errors.New("raftowner: request timed out")
)

// withDefaults returns cfg with every zero field set.
func (cfg Config) withDefaults() Config {
	type defaults struct{ hb, lease, pause time.Duration }
	d := defaults{100 * time.Millisecond, 150 * time.Millisecond, 50 * time.Millisecond}
	if cfg.Profile == WAN {
		d = defaults{time.Second, 1500 * time.Millisecond, 500 * time.Millisecond}
	}
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	set(&cfg.HeartbeatTimeout, d.hb)
	set(&cfg.ElectionTimeout, cfg.HeartbeatTimeout)
	set(&cfg.LeaderLeaseTimeout, cfg.HeartbeatTimeout)
	set(&cfg.CommitTimeout, 5*time.Millisecond)
	set(&cfg.Lease, d.lease)
	set(&cfg.MaxPause, d.pause)
	if cfg.ClockDrift == 0 {
		cfg.ClockDrift = 0.01
	}
	set(&cfg.ReassignDelay, cfg.minReassignDelay())
	set(&cfg.HoldDown, 10*cfg.Lease)
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

func (cfg Config) minReassignDelay() time.Duration {
	return time.Duration(float64(cfg.Lease)*(1+cfg.ClockDrift)) + cfg.MaxPause
}

// Validate checks the config after defaults are applied: the fields, the
// relationships raft requires, and the lease safety inequality.
func (cfg Config) Validate() error {
	c := cfg.withDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.ID == "":
		return bad("ID is required")
	case c.Role > RoleArbiter:
		return bad("unknown role %d", c.Role)
	case !validWeight(c.Weight):
		return bad("Weight %v not finite and ≥ 0", c.Weight)
	case c.Profile > WAN:
		return bad("unknown profile %d", c.Profile)
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout < 5*time.Millisecond:
		return bad("raft timeouts must be ≥ 5ms")
	case c.CommitTimeout < time.Millisecond:
		return bad("CommitTimeout must be ≥ 1ms")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout %v > HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return bad("ElectionTimeout %v < HeartbeatTimeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.Lease < 4*time.Millisecond:
		return bad("Lease %v too short", c.Lease)
	case c.ClockDrift < 0 || c.ClockDrift >= 1:
		return bad("ClockDrift %v not in [0,1)", c.ClockDrift)
	case c.MaxPause < 0:
		return bad("negative MaxPause")
	case c.ReassignDelay < c.minReassignDelay():
		return bad("ReassignDelay %v < Lease×(1+ClockDrift)+MaxPause = %v", c.ReassignDelay, c.minReassignDelay())
	case c.HoldDown < 0:
		return bad("negative HoldDown")
	case !c.Join && len(c.Peers) == 0:
		return bad("Peers is required unless Join is set")
	case c.Join && len(c.JoinVia) == 0:
		return bad("Join needs JoinVia")
	}
	seen := map[cluster.NodeID]bool{}
	self := false
	for _, p := range c.Peers {
		if p.ID == "" || p.Addr == "" || seen[p.ID] {
			return bad("peer %q: empty or repeated ID, or no Addr", p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == c.ID
	}
	if len(c.Peers) > 0 && !self {
		return bad("Peers does not list this node %q", c.ID)
	}
	return nil
}
