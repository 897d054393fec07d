package raftowner

import (
	"fmt"
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
	// cmdMember, cmdForget
	Member Member
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
	default:
		r.fail(fmt.Errorf("unknown command %d", c.Kind))
	}
	if err := r.done(); err != nil {
		return command{}, fmt.Errorf("raftowner: decode command: %w", err)
	}
	return c, nil
}
