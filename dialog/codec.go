package dialog

import (
	"encoding/binary"
	"fmt"

	"github.com/sipha/sipha/cluster"
)

// Wire format of ChannelDialog messages: a version byte, a type byte, then
// the body. Integers are varints, strings are a uvarint length and bytes.
const wireVersion = 1

const (
	msgRecord    = 1 // one dialog's full state
	msgTakeover  = 2 // origin, epoch: a new owner of origin's node resource
	msgSyncReq   = 3 // session
	msgSyncChunk = 4 // session, count, records
	msgSyncEnd   = 5 // session, total records sent
	msgPing      = 6 // nothing: lets a gap show within one heartbeat
	msgSyncAck   = 7 // session, chunks received: opens the donor's window
)

// Decoder limits: anything larger is refused as malformed.
const (
	maxString  = 4096
	maxMembers = 256
	maxVars    = 256
	maxChunk   = 1 << 16
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendRecord(b []byte, r *record) []byte {
	b = appendString(b, r.id.CallID)
	b = appendString(b, r.id.FromTag)
	b = appendString(b, string(r.origin))
	b = appendString(b, r.toTag)
	b = append(b, byte(r.state), r.flags, byte(r.reason), byte(r.hungUp))
	b = binary.AppendVarint(b, r.created)
	b = binary.AppendVarint(b, r.answered)
	b = binary.AppendVarint(b, r.ended)
	b = binary.AppendVarint(b, r.maxDur)
	b = binary.AppendUvarint(b, uint64(r.code))
	b = appendString(b, string(r.termBy))
	b = binary.AppendUvarint(b, r.termEpoch)
	b = binary.AppendUvarint(b, r.adopt)
	b = binary.AppendUvarint(b, uint64(len(r.members)))
	for _, m := range r.members {
		b = appendString(b, m.key.Name)
		b = appendString(b, m.key.Value)
		rm := byte(0)
		if m.removed {
			rm = 1
		}
		b = append(b, rm)
	}
	b = binary.AppendUvarint(b, uint64(len(r.vars)))
	for _, v := range r.vars {
		b = appendString(b, v.key)
		b = appendString(b, v.val)
		b = binary.AppendUvarint(b, v.clock)
		b = appendString(b, string(v.node))
	}
	return b
}

func appendRecordMsg(b []byte, r *record) []byte {
	return appendRecord(append(b, wireVersion, msgRecord), r)
}

func appendTakeover(b []byte, origin cluster.NodeID, epoch uint64) []byte {
	b = appendString(append(b, wireVersion, msgTakeover), string(origin))
	return binary.AppendUvarint(b, epoch)
}

func appendPing(b []byte) []byte { return append(b, wireVersion, msgPing) }

func appendSyncReq(b []byte, session uint64) []byte {
	return binary.AppendUvarint(append(b, wireVersion, msgSyncReq), session)
}

func appendSyncEnd(b []byte, session, total uint64) []byte {
	b = binary.AppendUvarint(append(b, wireVersion, msgSyncEnd), session)
	return binary.AppendUvarint(b, total)
}

// message is a decoded ChannelDialog message.
type message struct {
	typ     byte
	session uint64
	total   uint64 // msgSyncEnd: records; msgSyncAck: chunks
	origin  cluster.NodeID
	epoch   uint64
	records []*record
}

// decoder reads one message; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrDecode, what)
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("short " + what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if n > maxString || n > uint64(len(d.b)) {
		d.fail(what + " too long")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) record() *record {
	r := &record{timerIdx: -1}
	r.id.CallID = d.str("call-id")
	r.id.FromTag = d.str("from tag")
	r.origin = cluster.NodeID(d.str("origin"))
	r.toTag = d.str("to tag")
	r.state = State(d.byte1("state"))
	r.flags = d.byte1("flags")
	r.reason = Reason(d.byte1("reason"))
	r.hungUp = Party(d.byte1("hung up"))
	r.created = d.varint("created")
	r.answered = d.varint("answered")
	r.ended = d.varint("ended")
	r.maxDur = d.varint("max duration")
	code := d.uvarint("code")
	r.termBy = cluster.NodeID(d.str("terminated by"))
	r.termEpoch = d.uvarint("epoch")
	r.adopt = d.uvarint("adopt")
	nm := d.uvarint("members")
	if nm > maxMembers {
		d.fail("too many members")
	}
	for i := uint64(0); i < nm && d.err == nil; i++ {
		m := membership{key: ProfileKey{d.str("profile"), d.str("value")}}
		switch d.byte1("removed") {
		case 0:
		case 1:
			m.removed = true
		default:
			d.fail("bad removed flag")
		}
		if d.err == nil && !r.addMember(m) && !m.removed {
			d.fail("repeated profile")
		}
	}
	nv := d.uvarint("vars")
	if nv > maxVars {
		d.fail("too many vars")
	}
	for i := uint64(0); i < nv && d.err == nil; i++ {
		v := variable{key: d.str("var"), val: d.str("value")}
		v.clock = d.uvarint("clock")
		v.node = cluster.NodeID(d.str("var node"))
		if d.err == nil {
			for _, x := range r.vars {
				if x.key == v.key {
					d.fail("repeated var")
				}
			}
			r.vars = append(r.vars, v)
		}
	}
	if d.err != nil {
		return nil
	}
	switch {
	case r.id.CallID == "" || r.id.FromTag == "":
		d.fail("empty dialog ID")
	case r.state < Early || r.state > Terminated:
		d.fail("bad state")
	case r.flags&^flagsKnown != 0:
		d.fail("unknown flags")
	case r.reason > ReasonAPI || (r.reason == ReasonNone) != (r.state != Terminated):
		d.fail("bad reason")
	case r.hungUp > PartyCallee:
		d.fail("bad party")
	case code > 699:
		d.fail("bad code")
	case r.maxDur < 0:
		d.fail("negative max duration")
	case (r.toTag == "") != (r.answered == 0):
		d.fail("to tag without answer time")
	}
	r.code = uint16(code)
	if d.err != nil {
		return nil
	}
	return r
}

// decode parses one ChannelDialog message.
func decode(b []byte) (*message, error) {
	d := &decoder{b: b}
	if v := d.byte1("version"); d.err == nil && v != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrDecode, v)
	}
	m := &message{typ: d.byte1("type")}
	switch m.typ {
	case msgRecord:
		if r := d.record(); r != nil {
			m.records = []*record{r}
		}
	case msgTakeover:
		m.origin = cluster.NodeID(d.str("origin"))
		m.epoch = d.uvarint("epoch")
		if d.err == nil && m.origin == "" {
			d.fail("empty origin")
		}
	case msgSyncReq:
		m.session = d.uvarint("session")
	case msgSyncChunk:
		m.session = d.uvarint("session")
		n := d.uvarint("count")
		if n > maxChunk || n > uint64(len(d.b)) {
			d.fail("bad count")
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			if r := d.record(); r != nil {
				m.records = append(m.records, r)
			}
		}
	case msgSyncEnd:
		m.session = d.uvarint("session")
		m.total = d.uvarint("total")
	case msgSyncAck:
		m.session = d.uvarint("session")
		m.total = d.uvarint("chunks")
	case msgPing:
	default:
		if d.err == nil {
			d.fail(fmt.Sprintf("unknown type %d", m.typ))
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

func appendSyncChunkHead(b []byte, session, n uint64) []byte {
	b = binary.AppendUvarint(append(b, wireVersion, msgSyncChunk), session)
	return binary.AppendUvarint(b, n)
}

func appendSyncAck(b []byte, session, chunks uint64) []byte {
	b = binary.AppendUvarint(append(b, wireVersion, msgSyncAck), session)
	return binary.AppendUvarint(b, chunks)
}
