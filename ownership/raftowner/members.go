package raftowner

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// The committed membership carries, besides each member's ID, address and
// role, its weight (from its own Config.Weight, registered by memberLoop)
// and whether the leader last saw it healthy (committed by the leader when
// its view changes, see commitHealth). Both live in their own maps and
// commands, cmdWeight and cmdHealth, so the member row and its encoding
// stay as they were.
//
// Compatibility: a node of an older version skips these two commands as
// undecodable (the ownership table stays identical everywhere) but cannot
// restore a snapshot that carries them, so upgrade every node before the
// cluster snapshots.

// memberInfo is the extra state of one member.
type memberInfo struct {
	weight float64 // 0: never set, which means 1
	down   bool
}

func (i memberInfo) zero() bool { return i == memberInfo{} }

// memberList is the membership as ownership.MemberLister reports it.
func (s *state) memberList() []ownership.Member {
	ms := s.sortedMembers()
	for i := range ms {
		info := s.info[ms[i].ID]
		ms[i].Weight = info.weight
		if ms[i].Weight == 0 {
			ms[i].Weight = 1
		}
		ms[i].Healthy = !info.down
	}
	return ms
}

func (s *state) applyInfo(c command) {
	info := s.info[c.Member.ID]
	switch c.Kind {
	case cmdWeight:
		info.weight = c.Weight
	case cmdHealth:
		info.down = c.Down
	}
	if info.zero() {
		delete(s.info, c.Member.ID)
	} else {
		s.info[c.Member.ID] = info
	}
}

// encodeInfo appends the member info section of a snapshot; it is left out
// when empty, so a snapshot without it reads as before.
func (s *state) encodeInfo(w *writer) {
	if len(s.info) == 0 {
		return
	}
	ids := make([]cluster.NodeID, 0, len(s.info))
	for id := range s.info {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.uvarint(uint64(len(ids)))
	for _, id := range ids {
		w.str(string(id))
		w.uvarint(math.Float64bits(s.info[id].weight))
		var b byte
		if s.info[id].down {
			b = 1
		}
		w.byte1(b)
	}
}

func (s *state) decodeInfo(r *reader) {
	if r.err != nil || len(r.b) == 0 {
		return
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		id := cluster.NodeID(r.str())
		weight := math.Float64frombits(r.uvarint())
		b := r.byte1()
		if r.err == nil && (id == "" || b > 1 || !validWeight(weight)) {
			r.fail(fmt.Errorf("bad member info %q weight %v flags %d", id, weight, b))
		}
		if info := (memberInfo{weight: weight, down: b == 1}); !info.zero() {
			s.info[id] = info
		}
	}
}

func validWeight(w float64) bool { return w >= 0 && !math.IsInf(w, 0) && !math.IsNaN(w) }

// Members returns the committed membership, sorted by ID
// (ownership.MemberLister).
func (n *Node) Members() []ownership.Member {
	var ms []ownership.Member
	n.fsm.view(func(s *state) { ms = s.memberList() })
	return ms
}

// WatchMembers implements ownership.MemberLister.
func (n *Node) WatchMembers(fn func([]ownership.Member)) (stop func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mhub.Add(func([]ownership.Member) bool { return true }, fn, [][]ownership.Member{n.Members()})
}

// publishMembersLocked tells the membership watchers when the committed
// membership changed (called with n.mu held, after each applied entry).
func (n *Node) publishMembersLocked() {
	ms := n.Members()
	if slices.Equal(ms, n.lastMembers) {
		return
	}
	n.lastMembers = ms
	n.mhub.Publish(slices.Clone(ms))
}

var _ ownership.MemberLister = (*Node)(nil)

// registerWeight commits this node's configured weight when the committed
// one differs (memberLoop).
func (n *Node) registerWeight() {
	want := n.cfg.Weight
	if want == 1 {
		want = 0 // the default is stored as its absence
	}
	var have float64
	registered := false
	n.fsm.view(func(s *state) {
		_, registered = s.members[n.cfg.ID]
		have = s.info[n.cfg.ID].weight
	})
	if !registered || have == want {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 4*n.cfg.ElectionTimeout)
	defer cancel()
	c := command{Kind: cmdWeight, Member: Member{ID: n.cfg.ID}, Weight: want}
	if err := n.request(ctx, message{Op: opApply, Data: c.encode()}); err != nil && !isClosed(err) {
		n.cfg.Logger.Debug("raftowner: register weight", "err", err)
	}
}

// commitHealth commits the leader's view of each member's health when it
// differs from the committed one (leader loop, every reassignment tick).
// A node is healthy while it renews and reports itself healthy and not
// draining, down once the leader treats it as failed (when its
// resources may move) or reports itself unhealthy or draining; in between
// (a renewal or two late) the committed verdict stands. An arbiter, which
// does not renew, is judged by its answers to confirmation rounds. Each
// member gets at most one proposal per lease.
func (n *Node) commitHealth(ls *leaderState) {
	now := n.cfg.Now()
	var cmds []command
	n.fsm.view(func(s *state) {
		for id, m := range s.members {
			var down, known bool
			switch {
			case id == n.cfg.ID:
				down, known = false, true
				if p := ls.peers[id]; p != nil && ls.alive(id) {
					down = !p.eligible
				}
			case m.Role == RoleArbiter:
				h := ls.heard[id]
				switch {
				case now.Sub(h) < n.cfg.ReassignDelay:
					down, known = false, true
				case now.Sub(ls.takeoverFrom()) >= n.cfg.ReassignDelay:
					down, known = true, true
				}
			case ls.alive(id):
				down, known = !ls.eligible(id), true
			case ls.failed(id):
				down, known = true, true
			}
			if !known || down == s.info[id].down {
				continue
			}
			if at, ok := ls.healthProposed[id]; ok && now.Sub(at) < n.cfg.Lease {
				continue
			}
			ls.healthProposed[id] = now
			cmds = append(cmds, command{Kind: cmdHealth, Member: Member{ID: id}, Down: down})
		}
	})
	slices.SortFunc(cmds, func(a, b command) int { return strings.Compare(string(a.Member.ID), string(b.Member.ID)) })
	for _, c := range cmds {
		n.raft.Apply(c.encode(), n.cfg.Lease) // not waited for, like reassign's
	}
}
