package raftowner

import (
	"fmt"
	"math"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// cmdKind is the type of a Raft log command.
type cmdKind uint8

const (
	// cmdEnsure creates a resource (unowned) or updates its candidates,
	// policy and hold-down.
	cmdEnsure cmdKind = iota + 1
	// cmdRemove deletes a resource.
	cmdRemove
	// cmdAssign moves a resource from (From, FromEpoch) to To, or releases
	// it when To is empty. It is a compare-and-set: it does nothing unless
	// the table still says From at FromEpoch, so a decision taken on an
	// old view (or by a deposed leader whose entry still commits) cannot
	// undo a newer one.
	cmdAssign
	// cmdMember adds or updates a member.
	cmdMember
	// cmdForget removes a member.
	cmdForget
	// cmdWeight sets a member's weight (Member.ID, Weight).
	cmdWeight
	// cmdHealth records the leader's verdict on a member (Member.ID, Down).
	cmdHealth
)

// command is one Raft log entry.
type command struct {
	Kind cmdKind
	// cmdEnsure, cmdRemove, cmdAssign
	Name       string
	Candidates []cluster.NodeID
	Policy     ownership.Policy
	HoldDown   time.Duration
	// cmdAssign
	From      cluster.NodeID
	FromEpoch uint64
	To        cluster.NodeID
	// cmdMember, cmdForget; only the ID for cmdWeight and cmdHealth
	Member Member
	Weight float64 // cmdWeight
	Down   bool    // cmdHealth
}

func (c command) encode() []byte {
	w := &writer{}
	w.byte1(codecVersion)
	w.byte1(byte(c.Kind))
	switch c.Kind {
	case cmdEnsure:
		encodeResource(w, &resource{Name: c.Name, Candidates: c.Candidates, Policy: c.Policy, HoldDown: c.HoldDown})
	case cmdRemove:
		w.str(c.Name)
	case cmdAssign:
		w.str(c.Name)
		w.str(string(c.From))
		w.uvarint(c.FromEpoch)
		w.str(string(c.To))
	case cmdMember, cmdForget:
		encodeMember(w, c.Member)
	case cmdWeight:
		w.str(string(c.Member.ID))
		w.uvarint(math.Float64bits(c.Weight))
	case cmdHealth:
		w.str(string(c.Member.ID))
		var b byte
		if c.Down {
			b = 1
		}
		w.byte1(b)
	}
	return w.b
}

func decodeCommand(b []byte) (command, error) {
	r := &reader{b: b}
	r.version()
	c := command{Kind: cmdKind(r.byte1())}
	switch c.Kind {
	case cmdEnsure:
		res := decodeResource(r)
		c.Name, c.Candidates, c.Policy, c.HoldDown = res.Name, res.Candidates, res.Policy, res.HoldDown
	case cmdRemove:
		c.Name = r.str()
	case cmdAssign:
		c.Name = r.str()
		c.From = cluster.NodeID(r.str())
		c.FromEpoch = r.uvarint()
		c.To = cluster.NodeID(r.str())
	case cmdMember, cmdForget:
		c.Member = decodeMember(r)
	case cmdWeight:
		c.Member.ID = cluster.NodeID(r.str())
		c.Weight = math.Float64frombits(r.uvarint())
		if r.err == nil && (c.Member.ID == "" || !validWeight(c.Weight)) {
			r.fail(fmt.Errorf("bad weight %v for %q", c.Weight, c.Member.ID))
		}
	case cmdHealth:
		c.Member.ID = cluster.NodeID(r.str())
		b := r.byte1()
		c.Down = b == 1
		if r.err == nil && (c.Member.ID == "" || b > 1) {
			r.fail(fmt.Errorf("bad health %d for %q", b, c.Member.ID))
		}
	default:
		r.fail(fmt.Errorf("unknown command %d", c.Kind))
	}
	if err := r.done(); err != nil {
		return command{}, fmt.Errorf("raftowner: decode command: %w", err)
	}
	return c, nil
}
