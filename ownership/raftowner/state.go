package raftowner

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// Role and Member are the ownership package's, so a Node is an
// ownership.MemberLister.
type (
	Role   = ownership.Role
	Member = ownership.Member
)

// The roles, as in package ownership.
const (
	RoleNode    = ownership.RoleNode
	RoleSpare   = ownership.RoleSpare
	RoleArbiter = ownership.RoleArbiter
)

// resource is one row of the ownership table.
type resource struct {
	Name       string
	Candidates []cluster.NodeID
	Policy     ownership.Policy
	HoldDown   time.Duration
	Owner      cluster.NodeID // "" when unowned
	Epoch      uint64         // epoch of the latest change of Owner
	// ReleasedBy is the node that gave the resource up (Owner == ""): the
	// leader hands it on only after that node has applied the release
	// (ReleaseIndex) or has gone a reassignment delay without a lease.
	ReleasedBy   cluster.NodeID
	ReleaseIndex uint64
}

func (r *resource) clone() *resource {
	c := *r
	c.Candidates = slices.Clone(r.Candidates)
	return &c
}

// state is the replicated state: membership and the ownership table.
type state struct {
	epoch     uint64 // last epoch handed out; grows at every owner change
	members   map[cluster.NodeID]Member
	resources map[string]*resource
	info      map[cluster.NodeID]memberInfo // weights and health (members.go)
}

func newState() *state {
	return &state{members: map[cluster.NodeID]Member{}, resources: map[string]*resource{}, info: map[cluster.NodeID]memberInfo{}}
}

// ownerCandidates is the ordered list of nodes that may own r: its
// candidates (or every RoleNode member when it lists none), then the spares,
// leaving out arbiters and nodes that are not members.
func (s *state) ownerCandidates(r *resource) []cluster.NodeID {
	return s.appendOwnerCandidates(nil, r)
}

// appendOwnerCandidates appends ownerCandidates(r) to dst. The leader runs
// it for every resource at every reassignment tick, so it allocates nothing
// when dst has room: candidate lists are short, a linear search beats a set.
func (s *state) appendOwnerCandidates(dst []cluster.NodeID, r *resource) []cluster.NodeID {
	start := len(dst)
	if len(r.Candidates) > 0 {
		for _, c := range r.Candidates {
			if m, ok := s.members[c]; ok && m.Role != RoleArbiter && !slices.Contains(dst[start:], c) {
				dst = append(dst, c)
			}
		}
	} else {
		dst = s.appendMemberIDs(dst, RoleNode, nil)
	}
	return s.appendMemberIDs(dst, RoleSpare, dst[start:])
}

// appendMemberIDs appends the members of one role, sorted, that are not in
// skip.
func (s *state) appendMemberIDs(dst []cluster.NodeID, role Role, skip []cluster.NodeID) []cluster.NodeID {
	start := len(dst)
	for id, m := range s.members {
		if m.Role == role && !slices.Contains(skip, id) {
			dst = append(dst, id)
		}
	}
	slices.Sort(dst[start:])
	return dst
}

// memberIDs lists the members of one role, sorted.
func (s *state) memberIDs(role Role) []cluster.NodeID {
	var ids []cluster.NodeID
	for id, m := range s.members {
		if m.Role == role {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (s *state) sortedResources() []*resource {
	rs := make([]*resource, 0, len(s.resources))
	for _, r := range s.resources {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs
}

func (s *state) sortedMembers() []Member {
	ms := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms
}

// encode writes the whole state with the index of the last command it
// reflects (the snapshot format).
func (s *state) encode(applied uint64) []byte {
	w := &writer{}
	w.byte1(codecVersion)
	w.uvarint(applied)
	w.uvarint(s.epoch)
	ms := s.sortedMembers()
	w.uvarint(uint64(len(ms)))
	for _, m := range ms {
		encodeMember(w, m)
	}
	rs := s.sortedResources()
	w.uvarint(uint64(len(rs)))
	for _, r := range rs {
		encodeResource(w, r)
	}
	s.encodeInfo(w)
	return w.b
}

func decodeState(b []byte) (*state, uint64, error) {
	r := &reader{b: b}
	r.version()
	applied := r.uvarint()
	s := newState()
	s.epoch = r.uvarint()
	for n := r.count(); n > 0 && r.err == nil; n-- {
		m := decodeMember(r)
		s.members[m.ID] = m
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		res := decodeResource(r)
		if r.err == nil && res.Epoch > s.epoch {
			r.fail(fmt.Errorf("resource %q epoch %d above counter %d", res.Name, res.Epoch, s.epoch))
		}
		s.resources[res.Name] = res
	}
	s.decodeInfo(r)
	if err := r.done(); err != nil {
		return nil, 0, fmt.Errorf("raftowner: decode snapshot: %w", err)
	}
	return s, applied, nil
}

func encodeMember(w *writer, m Member) {
	w.str(string(m.ID))
	w.str(m.Addr)
	w.byte1(byte(m.Role))
}

func decodeMember(r *reader) Member {
	m := Member{ID: cluster.NodeID(r.str()), Addr: r.str(), Role: Role(r.byte1())}
	if r.err == nil && (m.ID == "" || m.Role > RoleArbiter) {
		r.fail(fmt.Errorf("bad member %q role %d", m.ID, m.Role))
	}
	return m
}

func encodeResource(w *writer, res *resource) {
	w.str(res.Name)
	w.uvarint(uint64(len(res.Candidates)))
	for _, c := range res.Candidates {
		w.str(string(c))
	}
	w.byte1(byte(res.Policy))
	w.varint(int64(res.HoldDown))
	w.str(string(res.Owner))
	w.uvarint(res.Epoch)
	w.str(string(res.ReleasedBy))
	w.uvarint(res.ReleaseIndex)
}

func decodeResource(r *reader) *resource {
	res := &resource{Name: r.str()}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		res.Candidates = append(res.Candidates, cluster.NodeID(r.str()))
	}
	res.Policy = ownership.Policy(r.byte1())
	res.HoldDown = time.Duration(r.varint())
	res.Owner = cluster.NodeID(r.str())
	res.Epoch = r.uvarint()
	res.ReleasedBy = cluster.NodeID(r.str())
	res.ReleaseIndex = r.uvarint()
	if r.err == nil {
		spec := ownership.Spec{Name: res.Name, Candidates: res.Candidates, Policy: res.Policy, HoldDown: res.HoldDown}
		if spec.Policy == ownership.Placed {
			spec.Place = func(string, []cluster.NodeID) []cluster.NodeID { return nil }
		}
		if err := spec.Validate(); err != nil {
			r.fail(err)
		}
	}
	return res
}
