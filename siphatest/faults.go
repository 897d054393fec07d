package siphatest

import (
	"context"
	"slices"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// Kill crashes a node: its host drops off the network at once (peers see
// resets, nothing more leaves it; with Loopback its connections are
// aborted), then its process stops without a goodbye or a handover. Its
// VIP addresses stay up in the fake until their lifetime lapses, as in the
// kernel; its CDR spool and Raft data stay for Restart. Killing a node that
// is down does nothing.
func (c *Cluster) Kill(id cluster.NodeID) {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	n.crashed.Store(true)
	if c.net != nil {
		c.net.Kill(string(id))
	} else {
		n.Transport.Abort()
	}
	n.stop()
}

// Stop stops a node gracefully, as a planned restart does: its rate
// limiter hands its share to the others, its ownership node hands every
// resource on (each released here, VIP addresses removed, before the next
// owner takes it) and Raft leadership, then everything closes. It returns
// the handover's error (ctx ended first: the node closed anyway, and the
// leader reassigns after its delay). Stopping a node that is down does
// nothing; Restart starts it again.
func (c *Cluster) Stop(ctx context.Context, id cluster.NodeID) error {
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	if n.Limiter != nil {
		n.Limiter.Close()
	}
	err := n.Ownership.Shutdown(ctx)
	n.stop() // the VIP manager's Close still removes what it has up
	n.crashed.Store(true)
	if c.net != nil {
		c.net.Kill(string(id))
	}
	return err
}

// Restart starts a killed or stopped node again on its data directory and CDR spool:
// Raft state from disk, locations and dialogs pulled from the running
// nodes. It returns the new incarnation without waiting for it to sync;
// call WaitReady for that. It fails the test when the node is running or
// does not start within Options.Timeout (starting the VIP block needs a
// Raft leader).
func (c *Cluster) Restart(id cluster.NodeID) *Node {
	c.t.Helper()
	if !slices.Contains(c.ids, id) || c.Node(id) != nil {
		c.t.Fatalf("siphatest: restart %s: unknown or running", id)
	}
	if c.net != nil {
		c.net.Restart(string(id))
	}
	cf := c.configs(id, false)
	n, err := c.startCore(cf)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.timeout())
		err = c.startBlocks(ctx, n, cf)
		cancel()
	}
	if err != nil {
		c.t.Fatalf("siphatest: restart %s: %v", id, err)
	}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.nodes[id] = n
	}
	c.mu.Unlock()
	if closed {
		n.stop()
		c.t.Fatalf("siphatest: restart %s after the cluster was closed", id)
	}
	return n
}

// Network is the in-memory network the nodes run on, for faults beyond
// the shortcuts here (one-way cuts, delay, loss, clock skew); its hosts are
// named after the nodes. It fails the test with Loopback.
func (c *Cluster) Network() *clustertest.Network {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatalf("siphatest: network faults need the in-memory network, not Options.Loopback")
	}
	return c.net
}

// Partition splits the nodes into groups that cannot reach each other;
// nodes named in no group form one more group. It replaces an earlier
// partition.
func (c *Cluster) Partition(groups ...[]cluster.NodeID) {
	c.t.Helper()
	hosts := make([][]string, len(groups))
	for i, g := range groups {
		for _, id := range g {
			hosts[i] = append(hosts[i], string(id))
		}
	}
	c.Network().Partition(hosts...)
}

// Isolate cuts a node off in both directions without telling anyone: it
// keeps running, and its peers see it fall silent.
func (c *Cluster) Isolate(id cluster.NodeID) {
	c.t.Helper()
	c.Network().Blackhole(string(id))
}

// Heal removes every partition, cut and isolation; bytes held meanwhile
// are delivered. With Loopback there is nothing to heal.
func (c *Cluster) Heal() {
	if c.net != nil {
		c.net.Heal()
	}
}
