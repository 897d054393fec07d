package raftowner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
)

// handleMessage is the ChannelOwnership handler. It never blocks: work
// goes to the leader loop or the request worker through bounded queues.
func (n *Node) handleMessage(cm cluster.Message) {
	m, err := decodeMessage(cm.Payload)
	if err != nil {
		n.cfg.Logger.Debug("raftowner: dropped malformed message", "from", cm.From, "err", err)
		return
	}
	switch m.Kind {
	case msgRenew:
		n.submitRenewal(renewal{from: cm.From, msg: m})
	case msgAck:
		n.handleAck(m)
	case msgConfirm:
		// Answer with the term as it is now, after the round began.
		r := message{Kind: msgConfirmed, Seq: m.Seq, Index: n.confirmTerm()}
		_ = n.tr.Send(cm.From, cluster.ChannelOwnership, r.encode())
	case msgConfirmed:
		select {
		case n.confirmCh <- confirmation{from: cm.From, nonce: m.Seq, term: m.Index}:
		default: // the round times out; renewers retry
		}
	case msgLastAnswer:
		n.handleLastAnswerQuery(cm.From, m)
	case msgLastAnswered:
		select {
		case n.reportCh <- answerReport{from: cm.From, term: m.Index, ago: time.Duration(min(m.Seq, 1<<62))}:
		default: // the leader asks again
		}
	case msgRequest:
		from := cm.From
		in := inbound{from: from, msg: m, reply: func(err error) {
			r := message{Kind: msgReply, ID: m.ID}
			if err != nil {
				r.Err = err.Error()
			}
			_ = n.tr.Send(from, cluster.ChannelOwnership, r.encode())
		}}
		select {
		case n.requestCh <- in:
		default: // the requester times out and retries
		}
	case msgReply:
		n.mu.Lock()
		ch := n.pending[m.ID]
		delete(n.pending, m.ID)
		n.mu.Unlock()
		if ch != nil {
			ch <- m.Err
		}
	}
}

// requestLoop executes requests on the leader, one at a time.
func (n *Node) requestLoop() {
	for {
		select {
		case <-n.quit:
			return
		case in := <-n.requestCh:
			err := n.execute(in.msg)
			if errors.Is(err, ErrNotLeader) && !in.msg.Forwarded {
				err = n.forward(in.msg)
			}
			in.reply(err)
		}
	}
}

// execute runs one request on this node, which must be the leader.
func (n *Node) execute(m message) error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	timeout := 4 * n.cfg.ElectionTimeout
	switch m.Op {
	case opApply:
		if _, err := decodeCommand(m.Data); err != nil {
			return err
		}
		f := n.raft.Apply(m.Data, timeout)
		if err := n.await(f); err != nil {
			return err
		}
		if res, ok := f.Response().(applyResult); ok && res.Err != nil {
			return res.Err
		}
		return nil
	case opAddVoter:
		var f raft.IndexFuture
		if m.Voter {
			f = n.raft.AddVoter(raft.ServerID(m.Member.ID), raft.ServerAddress(m.Member.Addr), 0, timeout)
		} else {
			f = n.raft.AddNonvoter(raft.ServerID(m.Member.ID), raft.ServerAddress(m.Member.Addr), 0, timeout)
		}
		return n.await(f)
	case opRemove:
		if err := n.await(n.raft.RemoveServer(raft.ServerID(m.Member.ID), 0, timeout)); err != nil {
			return err
		}
		return n.await(n.raft.Apply(command{Kind: cmdForget, Member: Member{ID: m.Member.ID}}.encode(), timeout))
	case opNoop:
		return nil
	}
	return fmt.Errorf("raftowner: unknown op %d", m.Op)
}

// forward passes a request that reached a follower on to the leader (a
// joining node knows only the nodes it was told about).
func (n *Node) forward(m message) error {
	_, leader := n.raft.LeaderWithID()
	if leader == "" || cluster.NodeID(leader) == n.cfg.ID {
		return ErrNotLeader
	}
	m.Forwarded = true
	ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.ElectionTimeout)
	defer cancel()
	if err := n.call(ctx, cluster.NodeID(leader), m); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return ErrTimeout
		}
		return err
	}
	return nil
}

// request runs m on the leader, here or over the transport, retrying
// through leader changes until ctx ends.
func (n *Node) request(ctx context.Context, m message) error {
	m.Kind = msgRequest
	for {
		err := n.requestOnce(ctx, m)
		if err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (last: %w)", ErrTimeout, ctx.Err(), err)
		case <-n.quit:
			return errClosed
		case <-time.After(n.cfg.HeartbeatTimeout / 4):
		}
	}
}

// transientErrors are the errors a retry (after a leader change) cures.
var transientErrors = []error{ErrNotLeader, ErrTimeout, errNoLeader, cluster.ErrQueueFull, cluster.ErrUnknownPeer, cluster.ErrPeerDown,
	raft.ErrNotLeader, raft.ErrLeadershipLost, raft.ErrEnqueueTimeout, raft.ErrLeadershipTransferInProgress}

func retryable(err error) bool {
	for _, known := range transientErrors {
		if errors.Is(err, known) {
			return true
		}
	}
	return false
}

var errNoLeader = errors.New("raftowner: no leader known")

func (n *Node) requestOnce(ctx context.Context, m message) error {
	_, leader := n.raft.LeaderWithID()
	switch {
	case leader == "":
		return errNoLeader
	case cluster.NodeID(leader) == n.cfg.ID:
		return n.execute(m)
	}
	return n.call(ctx, cluster.NodeID(leader), m)
}

// call sends a request to one node and waits for its reply for at most
// two election timeouts (the request is idempotent, so retrying is safe).
func (n *Node) call(ctx context.Context, to cluster.NodeID, m message) error {
	ch := make(chan string, 1)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errClosed
	}
	n.nextReqID++
	m.ID = n.nextReqID
	n.pending[m.ID] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.pending, m.ID)
		n.mu.Unlock()
	}()
	if err := n.tr.Send(to, cluster.ChannelOwnership, m.encode()); err != nil {
		return err
	}
	t := time.NewTimer(8 * n.cfg.ElectionTimeout)
	defer t.Stop()
	select {
	case e := <-ch:
		if e == "" {
			return nil
		}
		// The reply carries only the text: map the errors a retry can cure
		// back to their sentinels.
		for _, known := range transientErrors {
			if e == known.Error() {
				return known
			}
		}
		return errors.New(e)
	case <-t.C:
		return ErrTimeout
	case <-ctx.Done():
		return ctx.Err()
	case <-n.quit:
		return errClosed
	}
}

// memberLoop keeps this node's row in the committed membership right, so a
// restarted or joined node registers its role without operator action.
func (n *Node) memberLoop() {
	self := Member{ID: n.cfg.ID, Addr: n.cfg.Addr, Role: n.cfg.Role}
	t := time.NewTicker(n.cfg.Lease)
	defer t.Stop()
	for {
		var have Member
		var ok bool
		n.fsm.view(func(s *state) { have, ok = s.members[self.ID] })
		if !ok || have != self {
			ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.ElectionTimeout)
			err := n.request(ctx, message{Op: opApply, Data: command{Kind: cmdMember, Member: self}.encode()})
			cancel()
			if err != nil && !isClosed(err) {
				n.cfg.Logger.Debug("raftowner: register member", "err", err)
			}
		}
		n.registerWeight()
		n.replace()
		n.syncPeers()
		select {
		case <-n.quit:
			return
		case <-t.C:
		}
	}
}

// peerAdder is implemented by transports that take peers at run time
// (cluster.TCP).
type peerAdder interface {
	AddPeer(p cluster.Peer) error
}

// syncPeers tells the transport about every server in the Raft
// configuration, so a node that joined through one peer can reach the
// leader, and the leader can answer it.
func (n *Node) syncPeers() {
	pa, ok := n.tr.(peerAdder)
	if !ok {
		return
	}
	f := n.raft.GetConfiguration()
	if n.await(f) != nil {
		return
	}
	for _, s := range f.Configuration().Servers {
		id, addr := cluster.NodeID(s.ID), string(s.Address)
		if id == n.cfg.ID || n.knownPeers[id] == addr {
			continue
		}
		if err := pa.AddPeer(cluster.Peer{ID: id, Addr: addr}); err == nil {
			n.knownPeers[id] = addr
		}
	}
}

// replace recomputes the candidates of the Placed resources this node
// registered and commits them when they changed.
func (n *Node) replace() {
	n.mu.Lock()
	placers := make(map[string]func() []cluster.NodeID, len(n.placers))
	for name, fn := range n.placers {
		placers[name] = func() []cluster.NodeID { return n.place(name, fn) }
	}
	n.mu.Unlock()
	for _, name := range sortedKeys(placers) {
		want := placers[name]()
		var cur *resource
		n.fsm.view(func(s *state) {
			if r, ok := s.resources[name]; ok {
				cur = r.clone()
			}
		})
		if cur == nil || equalIDs(cur.Candidates, want) {
			continue
		}
		c := command{Kind: cmdEnsure, Name: name, Candidates: want, Policy: cur.Policy, HoldDown: cur.HoldDown}
		ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.ElectionTimeout)
		_ = n.request(ctx, message{Op: opApply, Data: c.encode()})
		cancel()
	}
}

func equalIDs(a, b []cluster.NodeID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
