package raftowner

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Recover rewrites the Raft configuration stored in cfg.DataDir so that
// survivors alone form the cluster. It is the way out when a quorum is lost
// for good (two of three nodes destroyed): the remaining nodes cannot elect
// a leader, so nothing can be reassigned, until an operator declares the
// dead ones gone.
//
// Procedure: stop every surviving node (Close or kill the process); run
// Recover on each survivor with the same survivors list; start them again
// with New. They elect a leader among themselves, the leader waits
// ReassignDelay and hands the dead nodes' resources to live candidates.
// Remove the dead nodes' rows with Leave, and add replacements with a
// fresh DataDir and Config.Join.
//
// Recover is unsafe if a node left out of survivors is in fact alive and
// still has a quorum of its own: that is exactly the split brain Raft
// prevents, and an operator who runs Recover takes that decision. The node
// must be stopped; Recover refuses a DataDir without Raft state.
func Recover(cfg Config, survivors []Peer) error {
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: Recover needs the DataDir of a stopped node", ErrConfig)
	}
	if len(survivors) == 0 {
		return fmt.Errorf("%w: no survivors", ErrConfig)
	}
	cfg.Peers = survivors
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	rc := raftConfig(cfg)
	logs, stable, snaps, closers, err := openStores(cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	var servers []raft.Server
	for _, p := range survivors {
		s := raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter}
		if p.NonVoter {
			s.Suffrage = raft.Nonvoter
		}
		servers = append(servers, s)
	}
	// RecoverCluster wants a transport only to label the snapshot it
	// writes; an in-memory one serves.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Addr))
	defer trans.Close()
	if err := raft.RecoverCluster(rc, newFSM(nil), logs, stable, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
		return fmt.Errorf("raftowner: recover: %w", err)
	}
	return nil
}

// raftConfig builds raft's config from ours.
func raftConfig(cfg Config) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{cfg.Logger}})
	return rc
}
