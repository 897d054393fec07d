package ratelimit

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A demand message, version 1. Every node broadcasts one round of them each
// Interval: its smoothed demand per pipe, and for each peer the newest
// round it heard from it (so the peer learns the exchange works both ways).
//
//	version  byte (1)
//	flags    byte (bit 0: the sender is leaving)
//	inc      uvarint  the sender limiter's incarnation (new at every start)
//	round    uvarint  the sender's round number, from 1
//	nacks    uvarint  ≤ maxAcks, then per ack:
//	  id     uvarint length ≤ 255, bytes   a peer's node ID
//	  inc    uvarint  that peer's incarnation
//	  round  uvarint  that peer's newest round heard
//	pipes to the end of the message, each:
//	  name   uvarint length 1..255, bytes
//	  demand uvarint  calls per second × 1000
//
// A round whose pipes do not fit in MaxMessageBytes goes out as several
// messages with the same header; a receiver keeps a pipe's demand while it
// is from the sender's newest round or the one before.
const (
	wireVersion = 1
	flagLeaving = 1 << 0
	maxAcks     = 64
	maxIDBytes  = 255
	milli       = 1000
	maxWireRate = 1 << 50 // calls/s × 1000; far above any real demand
)

type ackEntry struct {
	id        []byte
	inc, tick uint64
}

type pipeDemand struct {
	name  []byte
	milli uint64
}

// demandMsg is a decoded message. Its byte slices point into the payload
// it was decoded from; decode reuses its slices, so one value serves a
// stream of messages without allocating.
type demandMsg struct {
	flags     byte
	inc, tick uint64
	acks      []ackEntry
	pipes     []pipeDemand
}

func (m *demandMsg) decode(b []byte) error {
	r := reader{b: b}
	v := r.byte()
	if r.err == nil && v != wireVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadMessage, v, wireVersion)
	}
	m.flags = r.byte()
	m.inc = r.uvarint()
	m.tick = r.uvarint()
	n := r.uvarint()
	if r.err == nil && n > maxAcks {
		return fmt.Errorf("%w: %d acks, at most %d", ErrBadMessage, n, maxAcks)
	}
	m.acks = m.acks[:0]
	for i := uint64(0); i < n && r.err == nil; i++ {
		a := ackEntry{id: r.bytes(maxIDBytes, "node ID")}
		a.inc = r.uvarint()
		a.tick = r.uvarint()
		m.acks = append(m.acks, a)
	}
	m.pipes = m.pipes[:0]
	for r.err == nil && len(r.b) > 0 {
		d := pipeDemand{name: r.bytes(maxPipeName, "pipe name")}
		d.milli = r.uvarint()
		if r.err == nil && (len(d.name) == 0 || d.milli > maxWireRate) {
			r.fail("empty pipe name or demand out of range")
		}
		m.pipes = append(m.pipes, d)
	}
	if r.err == nil && m.tick == 0 {
		r.fail("round 0")
	}
	return r.err
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadMessage, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated or overlong varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(limit int, what string) []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail(what + " too long or truncated")
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// encoder builds the messages of one round.
type encoder struct {
	buf    []byte
	header int // length of the header at the start of buf
	pipes  int // pipes in the message being built
}

// start begins a round's first message with the given header.
func (e *encoder) start(flags byte, inc, tick uint64, acks []ackEntry) {
	b := append(e.buf[:0], wireVersion, flags)
	b = binary.AppendUvarint(b, inc)
	b = binary.AppendUvarint(b, tick)
	b = binary.AppendUvarint(b, uint64(len(acks)))
	for _, a := range acks {
		b = binary.AppendUvarint(b, uint64(len(a.id)))
		b = append(b, a.id...)
		b = binary.AppendUvarint(b, a.inc)
		b = binary.AppendUvarint(b, a.tick)
	}
	e.buf, e.header, e.pipes = b, len(b), 0
}

// pipeLen is the most bytes one pipe takes.
func pipeLen(name string) int { return 2*binary.MaxVarintLen64 + len(name) }

// add appends a pipe's demand; the caller checks room first with full.
func (e *encoder) add(name string, rate float64) {
	v := uint64(maxWireRate)
	if r := rate * milli; r < maxWireRate {
		v = uint64(math.Round(max(0, r)))
	}
	e.buf = binary.AppendUvarint(e.buf, uint64(len(name)))
	e.buf = append(e.buf, name...)
	e.buf = binary.AppendUvarint(e.buf, v)
	e.pipes++
}

// full reports whether name would push the message past limit.
func (e *encoder) full(name string, limit int) bool {
	return e.pipes > 0 && len(e.buf)+pipeLen(name) > limit
}

// next keeps the header and drops the pipes, for the round's next message.
func (e *encoder) next() { e.buf, e.pipes = e.buf[:e.header], 0 }
