package raftowner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Every encoded value (log command, snapshot, wire message) starts with this
// version byte, so a newer node can read what an older one wrote.
const codecVersion = 1

// maxCodecString bounds any decoded string or list so a corrupt or hostile
// input cannot make the decoder allocate without limit.
const (
	maxCodecString = 4096
	maxCodecList   = 1 << 20
)

var errShort = errors.New("truncated")

// writer appends a compact binary encoding: uvarints, length-prefixed
// strings.
type writer struct{ b []byte }

func (w *writer) byte1(v byte)     { w.b = append(w.b, v) }
func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// reader decodes what writer wrote; the first error sticks and later reads
// return zero values, so callers check err once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(errShort)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > maxCodecString || n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("string of %d bytes", n))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// count reads a list length, refusing lengths the remaining input cannot
// hold (each element takes at least one byte).
func (r *reader) count() int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n > maxCodecList || n > uint64(len(r.b)) || n > math.MaxInt32 {
		r.fail(fmt.Errorf("list of %d elements", n))
		return 0
	}
	return int(n)
}

// version checks the leading version byte.
func (r *reader) version() {
	if v := r.byte1(); r.err == nil && v != codecVersion {
		r.fail(fmt.Errorf("version %d, want %d", v, codecVersion))
	}
}

// done fails when bytes are left over: trailing garbage means a framing bug.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Errorf("%d trailing bytes", len(r.b)))
	}
	return r.err
}
