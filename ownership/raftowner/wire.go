package raftowner

import (
	"fmt"

	"github.com/sipha/sipha/cluster"
)

// Messages on cluster.ChannelOwnership.
type msgKind uint8

const (
	// msgRenew: a node asks the leader to extend its lease.
	msgRenew msgKind = iota + 1
	// msgAck: the leader extends the lease of the renewal with Seq.
	msgAck
	// msgRequest: a node asks the leader to do Op (forwarded Ensure,
	// Remove, join, leave).
	msgRequest
	// msgReply answers msgRequest ID.
	msgReply
	// msgConfirm: the leader asks a voter for its current Raft term (Seq
	// is the round's nonce, Index the leader's term).
	msgConfirm
	// msgConfirmed answers msgConfirm Seq with the voter's term in Index.
	msgConfirmed
	// msgLastAnswer: a new leader of term Index asks a voter when it last
	// answered a confirmation round with a lower term (see takeover.go).
	msgLastAnswer
	// msgLastAnswered answers msgLastAnswer for term Index: Seq is how many
	// nanoseconds ago, on the voter's clock.
	msgLastAnswered
)

// Request operations.
type opKind uint8

const (
	opApply    opKind = iota + 1 // Data is an encoded command
	opAddVoter                   // add Member (ID, Addr) to Raft, Voter says how
	opRemove                     // remove Member.ID from Raft and the table
	opNoop                       // does nothing; tests the path
	maxOpKind  = opNoop
)

const (
	flagHealthy  = 1 << 0
	flagDraining = 1 << 1
)

// message is every message of the ownership channel.
type message struct {
	Kind msgKind
	// msgRenew, msgAck
	Seq uint64
	// msgRenew: the sender's applied index, so the leader knows it has seen
	// a release; msgAck: the index the renewer must have applied before the
	// lease counts (the leader's last log index after its leadership was
	// verified, which covers every committed owner change).
	Index uint64
	// msgRenew
	Flags uint8
	// msgRequest, msgReply
	ID uint64
	// msgRequest
	Op     opKind
	Data   []byte
	Member Member
	Voter  bool
	// Forwarded marks a request a follower passed on to the leader; it is
	// not passed on again, so two nodes with different ideas of the leader
	// cannot bounce it.
	Forwarded bool
	// msgReply: empty on success
	Err string
}

const maxData = 1 << 16

func (m message) encode() []byte {
	w := &writer{}
	w.byte1(codecVersion)
	w.byte1(byte(m.Kind))
	switch m.Kind {
	case msgRenew:
		w.uvarint(m.Seq)
		w.uvarint(m.Index)
		w.byte1(m.Flags)
	case msgAck, msgConfirm, msgConfirmed, msgLastAnswer, msgLastAnswered:
		w.uvarint(m.Seq)
		w.uvarint(m.Index)
	case msgRequest:
		w.uvarint(m.ID)
		w.byte1(byte(m.Op))
		w.uvarint(uint64(len(m.Data)))
		w.b = append(w.b, m.Data...)
		encodeMember(w, m.Member)
		var b byte
		if m.Voter {
			b |= 1
		}
		if m.Forwarded {
			b |= 2
		}
		w.byte1(b)
	case msgReply:
		w.uvarint(m.ID)
		w.str(m.Err)
	}
	return w.b
}

func decodeMessage(b []byte) (message, error) {
	r := &reader{b: b}
	r.version()
	m := message{Kind: msgKind(r.byte1())}
	switch m.Kind {
	case msgRenew:
		m.Seq, m.Index, m.Flags = r.uvarint(), r.uvarint(), r.byte1()
	case msgAck, msgConfirm, msgConfirmed, msgLastAnswer, msgLastAnswered:
		m.Seq, m.Index = r.uvarint(), r.uvarint()
	case msgRequest:
		m.ID = r.uvarint()
		m.Op = opKind(r.byte1())
		n := r.uvarint()
		if r.err == nil && (n > maxData || n > uint64(len(r.b))) {
			r.fail(fmt.Errorf("data of %d bytes", n))
		}
		if r.err == nil {
			m.Data = append([]byte(nil), r.b[:n]...)
			r.b = r.b[n:]
		}
		// The member is optional for ops that do not need one, so its ID
		// may be empty here: decode its fields without decodeMember's check.
		m.Member = Member{ID: cluster.NodeID(r.str()), Addr: r.str(), Role: Role(r.byte1())}
		b := r.byte1()
		m.Voter, m.Forwarded = b&1 != 0, b&2 != 0
		if r.err == nil && (b > 3 || m.Op == 0 || m.Op > maxOpKind || m.Member.Role > RoleArbiter) {
			r.fail(fmt.Errorf("bad op %d or role %d", m.Op, m.Member.Role))
		}
	case msgReply:
		m.ID = r.uvarint()
		m.Err = r.str()
	default:
		r.fail(fmt.Errorf("unknown message %d", m.Kind))
	}
	if err := r.done(); err != nil {
		return message{}, fmt.Errorf("raftowner: decode message: %w", err)
	}
	return m, nil
}
