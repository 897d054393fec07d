package usrloc

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"
)

// Replication messages: a version byte, a type byte, then the body. All
// integers are unsigned varints except HLCs and digest sums (8 bytes, little
// endian). A decoder never trusts a length: every read is bounds-checked and
// a malformed message is an error, never a panic.
const wireVersion = 1

type msgType uint8

const (
	msgUpdates   msgType = 1 // a batch of binding versions
	msgSyncReq   msgType = 2 // puller → donor: stream me these buckets
	msgSyncChunk msgType = 3 // donor → puller: whole buckets
	msgSyncAck   msgType = 4 // puller → donor: a chunk was applied (flow control)
	msgDigest    msgType = 5 // every bucket's digest
)

// maxRecsPerMsg bounds the records a decoder accepts in one message, so a
// lying count cannot make it allocate: every record takes at least this
// many bytes on the wire.
const minRecBytes = 14

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) u64(v uint64)     { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) byte1(v byte)     { e.b = append(e.b, v) }
func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) header(t msgType) { e.b = append(e.b, wireVersion, byte(t)) }

// rec appends one binding version.
func (e *encoder) rec(w *wireRec) {
	e.str(w.AOR)
	e.str(w.F.Contact)
	e.str(w.F.Received)
	e.str(w.F.CallID)
	e.str(w.F.Instance)
	e.str(w.F.UserAgent)
	e.str(w.F.Path)
	e.str(w.F.Socket)
	e.str(w.Node)
	e.uvarint(uint64(w.F.RegID))
	e.uvarint(uint64(w.F.CSeq))
	e.uvarint(uint64(w.F.Q))
	e.byte1(w.F.Flags)
	var tomb byte
	if w.Tombstone {
		tomb = 1
	}
	e.byte1(tomb)
	ms := int64(w.Remaining / time.Millisecond)
	if ms < 0 {
		ms = 0
	}
	e.uvarint(uint64(ms))
	e.u64(uint64(w.HLC))
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (d *decoder) uvarint(max uint64, what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > max {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) byte1(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// str returns a string that aliases the message buffer: valid only while
// the buffer is, so whatever keeps it must copy (pack and the interner do).
func (d *decoder) str(what string) string {
	n := d.uvarint(maxBlob, what)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.fail(what)
		return ""
	}
	if n == 0 {
		return ""
	}
	s := unsafe.String(&d.b[0], int(n))
	d.b = d.b[n:]
	return s
}

// count reads a record count and checks the bytes left can hold it.
func (d *decoder) count(what string) int {
	n := d.uvarint(uint64(len(d.b)/minRecBytes), what)
	return int(n)
}

func (d *decoder) rec(w *wireRec) {
	w.AOR = d.str("aor")
	w.F.Contact = d.str("contact")
	w.F.Received = d.str("received")
	w.F.CallID = d.str("call-id")
	w.F.Instance = d.str("instance")
	w.F.UserAgent = d.str("user-agent")
	w.F.Path = d.str("path")
	w.F.Socket = d.str("socket")
	w.Node = d.str("node")
	w.F.RegID = uint32(d.uvarint(1<<32-1, "reg-id"))
	w.F.CSeq = uint32(d.uvarint(1<<32-1, "cseq"))
	w.F.Q = uint16(d.uvarint(1000, "q"))
	w.F.Flags = d.byte1("flags")
	switch d.byte1("tombstone") {
	case 0:
		w.Tombstone = false
	case 1:
		w.Tombstone = true
	default:
		d.fail("tombstone")
	}
	w.Remaining = time.Duration(d.uvarint(uint64(maxRemaining/time.Millisecond), "remaining")) * time.Millisecond
	w.HLC = HLC(d.u64("hlc"))
	if d.err == nil && (w.AOR == "" || w.F.Contact == "" || w.Node == "") {
		d.fail("empty aor, contact or node")
	}
}

// maxRemaining bounds a replicated expiry: a year is far beyond any
// registrar's maximum and keeps the arithmetic far from overflow.
const maxRemaining = 365 * 24 * time.Hour

// message is any decoded replication message.
type message struct {
	typ    msgType
	id     uint64 // sync or round ID
	seq    uint64 // chunk sequence
	cursor int    // sync: first bucket not yet sent after this chunk
	last   bool   // sync chunk: the stream is complete
	// refused: the donor is not synced itself and sends nothing (a
	// restarted empty node must never be the reference of a sync).
	refused bool
	recs    []wireRec
	// digest
	reply   bool
	digests []bucketSum
	// sync request: the buckets to stream, in order
	buckets []int
}

// decode parses one message. Strings in m alias b.
func decode(b []byte, m *message) error {
	d := decoder{b: b}
	if len(b) < 2 {
		return fmt.Errorf("%w: short", ErrMalformed)
	}
	if b[0] != wireVersion {
		return fmt.Errorf("%w: version %d", ErrMalformed, b[0])
	}
	*m = message{typ: msgType(b[1]), recs: m.recs[:0], digests: m.digests[:0], buckets: m.buckets[:0]}
	d.b = b[2:]
	switch m.typ {
	case msgUpdates:
		d.recs(m)
	case msgSyncReq:
		m.id = d.u64("sync id")
		d.bucketList(m)
	case msgSyncChunk:
		m.id = d.u64("sync id")
		m.seq = d.uvarint(1<<62, "seq")
		m.cursor = int(d.uvarint(nBuckets, "cursor"))
		flags := d.byte1("flags")
		if flags > 3 {
			d.fail("chunk flags")
		}
		m.last, m.refused = flags&1 != 0, flags&2 != 0
		d.recs(m)
	case msgSyncAck:
		m.id = d.u64("sync id")
		m.seq = d.uvarint(1<<62, "seq")
	case msgDigest:
		m.id = d.u64("round id")
		m.reply = d.byte1("reply") == 1
		n := d.uvarint(nBuckets, "digest count")
		if d.err == nil && n != nBuckets {
			d.fail("digest count")
		}
		for i := 0; d.err == nil && i < int(n); i++ {
			c := uint32(d.uvarint(1<<32-1, "bucket count"))
			m.digests = append(m.digests, bucketSum{count: c, sum: d.u64("bucket sum")})
		}
	default:
		return fmt.Errorf("%w: type %d", ErrMalformed, m.typ)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// bucketList reads a list of distinct bucket numbers.
func (d *decoder) bucketList(m *message) {
	n := d.uvarint(nBuckets, "bucket list")
	var seen [nBuckets / 64]uint64
	for i := 0; d.err == nil && i < int(n); i++ {
		b := int(d.uvarint(nBuckets-1, "bucket"))
		if seen[b/64]&(1<<(b%64)) != 0 {
			d.fail("repeated bucket")
		}
		seen[b/64] |= 1 << (b % 64)
		m.buckets = append(m.buckets, b)
	}
}

func (d *decoder) recs(m *message) {
	n := d.count("record count")
	for i := 0; d.err == nil && i < n; i++ {
		m.recs = append(m.recs, wireRec{})
		d.rec(&m.recs[len(m.recs)-1])
	}
}

// encode appends m to b.
func encode(b []byte, m *message) []byte {
	e := encoder{b: b}
	e.header(m.typ)
	switch m.typ {
	case msgUpdates:
		e.recs(m.recs)
	case msgSyncReq:
		e.u64(m.id)
		e.uvarint(uint64(len(m.buckets)))
		for _, b := range m.buckets {
			e.uvarint(uint64(b))
		}
	case msgSyncChunk:
		e.u64(m.id)
		e.uvarint(m.seq)
		e.uvarint(uint64(m.cursor))
		var flags byte
		if m.last {
			flags |= 1
		}
		if m.refused {
			flags |= 2
		}
		e.byte1(flags)
		e.recs(m.recs)
	case msgSyncAck:
		e.u64(m.id)
		e.uvarint(m.seq)
	case msgDigest:
		e.u64(m.id)
		e.bool(m.reply)
		e.uvarint(uint64(len(m.digests)))
		for _, d := range m.digests {
			e.uvarint(uint64(d.count))
			e.u64(d.sum)
		}
	}
	return e.b
}

func (e *encoder) bool(v bool) {
	if v {
		e.byte1(1)
	} else {
		e.byte1(0)
	}
}

func (e *encoder) recs(rs []wireRec) {
	e.uvarint(uint64(len(rs)))
	for i := range rs {
		e.rec(&rs[i])
	}
}
