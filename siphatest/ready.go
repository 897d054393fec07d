package siphatest

import (
	"context"
	"fmt"
	"time"

	"github.com/sipha/sipha/cluster"
)

// WaitReady waits until the running nodes form a settled cluster: they
// agree on a Raft leader, every one holds a valid ownership lease, sees
// every other running node up and, for the enabled blocks, has synced its
// locations and dialogs, hears every peer's rate limiter, and every VIP
// has exactly one holder. It returns an error naming what was still
// missing, with the cluster's state, when ctx ends first.
func (c *Cluster) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		missing := c.notReady()
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready (%w): %s; cluster:\n%s", ctx.Err(), missing, c.Dump())
		case <-tick.C:
		}
	}
}

// notReady names the first readiness condition that does not hold, or "".
func (c *Cluster) notReady() string {
	running := c.Running()
	if len(running) == 0 {
		return "no node running"
	}
	if c.Leader() == "" {
		return "an agreed Raft leader"
	}
	up := map[cluster.NodeID]bool{}
	for _, n := range running {
		up[n.ID] = true
	}
	for _, n := range running {
		if !n.Ownership.Ready() {
			return fmt.Sprintf("%s's ownership lease", n.ID)
		}
		seen := 0
		for _, m := range n.Transport.Members() {
			if up[m.ID] && m.State == cluster.StateUp {
				seen++
			}
		}
		if seen < len(running)-1 {
			return fmt.Sprintf("%s seeing every running peer up", n.ID)
		}
		if n.Locations != nil && !closed(n.Locations.Replicator.Synced()) {
			return fmt.Sprintf("%s's location store synced", n.ID)
		}
		if n.Dialogs != nil && !closed(n.Dialogs.Synced()) {
			return fmt.Sprintf("%s's dialogs synced", n.ID)
		}
		if n.Limiter != nil && n.Limiter.Stats().PeersInContact < len(running)-1 {
			return fmt.Sprintf("%s's rate limiter hearing every peer", n.ID)
		}
	}
	if c.opts.runs(BlockVIPs) {
		for _, v := range c.opts.vips() {
			res := v.Resource()
			if h := c.Holders(res); len(h) != 1 {
				return fmt.Sprintf("one holder of %s (have %v)", res, h)
			}
			if h := c.vipLog.Holders(v.Prefix); len(h) != 1 {
				return fmt.Sprintf("one node with %s up (have %v)", v.Prefix, h)
			}
		}
	}
	return ""
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
