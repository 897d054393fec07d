package raftowner

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// Shutdown hands this node's duties on, then closes it: it stops taking
// resources and asks the leader to move the ones it holds (each is
// released first, so the next owner starts only after this node stopped),
// waits until it holds none, hands Raft leadership to another voter if it
// leads, and closes. When ctx ends first it closes anyway and returns the
// context's error; the leader then reassigns after ReassignDelay.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	var err error
	for err == nil && n.ownsAny() {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("raftowner: shutdown: %w", ctx.Err())
		case <-n.quit:
			return errClosed
		case <-time.After(n.cfg.Lease / 8):
		}
	}
	if err == nil {
		n.reportReleases(ctx)
	}
	if err == nil && n.raft.State() == raft.Leader && n.otherVoters() > 0 {
		n.awaitHandedOn(ctx)
		if terr := n.transferLeadership(ctx); terr != nil {
			n.cfg.Logger.Warn("raftowner: leadership transfer failed", "err", terr)
		}
	}
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return err
}

// reportReleases sends one more renewal, carrying the applied index that
// covers this node's releases, and waits (at most a lease) for its ack.
// The leader hands a released resource on only once the old owner has
// reported applying the release, or after ReassignDelay when it never
// does: without this report a graceful stop cost as much as a crash
// whenever the last renewal went out before the release was applied.
func (n *Node) reportReleases(ctx context.Context) {
	n.renew()
	n.mu.Lock()
	seq := n.lease.seq
	n.mu.Unlock()
	n.pollFor(ctx, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		_, waiting := n.lease.sent[seq]
		return waiting
	})
}

// awaitHandedOn waits, at most a lease, until no resource this node
// released is still unowned. A draining leader knows it applied its
// releases; the next leader does not, and would wait ReassignDelay for
// this node's silence before handing them on.
func (n *Node) awaitHandedOn(ctx context.Context) {
	pending := func() bool {
		p := false
		n.fsm.view(func(s *state) {
			for _, r := range s.resources {
				p = p || (r.Owner == "" && r.ReleasedBy == n.cfg.ID)
			}
		})
		return p
	}
	n.pollFor(ctx, pending)
}

// pollFor calls busy every Lease/32 while it reports true, for at most a
// lease, or until ctx ends or the node closes.
func (n *Node) pollFor(ctx context.Context, busy func() bool) {
	deadline := time.Now().Add(n.cfg.Lease)
	for busy() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-n.quit:
			return
		case <-time.After(n.cfg.Lease / 32):
		}
	}
}

// ownsAny reports whether the table still names this node as an owner.
func (n *Node) ownsAny() bool {
	owns := false
	n.fsm.view(func(s *state) {
		for _, r := range s.resources {
			if r.Owner == n.cfg.ID {
				owns = true
				return
			}
		}
	})
	return owns
}

func (n *Node) otherVoters() int {
	f := n.raft.GetConfiguration()
	if n.await(f) != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != raft.ServerID(n.cfg.ID) {
			c++
		}
	}
	return c
}

// joinLoop asks the nodes in JoinVia to add this node to Raft until it
// appears in the configuration.
func (n *Node) joinLoop() {
	m := message{Kind: msgRequest, Op: opAddVoter, Voter: n.cfg.Role != RoleSpare,
		Member: Member{ID: n.cfg.ID, Addr: n.cfg.Addr, Role: n.cfg.Role}}
	for i := 0; ; i++ {
		if n.inConfiguration() {
			return
		}
		via := n.cfg.JoinVia[i%len(n.cfg.JoinVia)]
		ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.ElectionTimeout)
		err := n.call(ctx, via, m)
		cancel()
		if err == nil {
			return
		}
		n.cfg.Logger.Debug("raftowner: join", "via", via, "err", err)
		select {
		case <-n.quit:
			return
		case <-time.After(n.cfg.HeartbeatTimeout):
		}
	}
}

func (n *Node) inConfiguration() bool {
	f := n.raft.GetConfiguration()
	if n.await(f) != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(n.cfg.ID) {
			return true
		}
	}
	return false
}

// Leave removes node id from the cluster for good (Raft configuration and
// membership); its resources go to their standbys after ReassignDelay. Use
// it to retire a dead node before adding its replacement.
func (n *Node) Leave(ctx context.Context, id cluster.NodeID) error {
	return n.request(ctx, message{Op: opRemove, Member: Member{ID: id}})
}

// AddNode adds a node to Raft through the leader: as a voter, or as a
// non-voter when voter is false.
func (n *Node) AddNode(ctx context.Context, id cluster.NodeID, addr string, voter bool) error {
	return n.request(ctx, message{Op: opAddVoter, Voter: voter, Member: Member{ID: id, Addr: addr}})
}
