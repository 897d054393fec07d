package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// A segment is a sequence of frames:
//
//	magic (2 bytes) | payload length (uint32 LE) | CRC32C of payload (uint32 LE) | payload
//
// The magic lets a reader that meets a damaged frame find the next good one
// without trusting the damaged length. A frame's payload is one entry:
//
//	version (1) | uvarint len(id) | id | varint unix nanoseconds | body
const (
	magic0     = 0xC5
	magic1     = 0xD7
	headerSize = 10
	entryV1    = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sentinel errors of the decoders.
var (
	ErrShort    = errors.New("spool: short frame")
	ErrMagic    = errors.New("spool: bad frame magic")
	ErrChecksum = errors.New("spool: frame checksum mismatch")
	ErrTooLarge = errors.New("spool: frame larger than the limit")
	ErrEntry    = errors.New("spool: malformed entry")
)

// Entry is one spooled record.
type Entry struct {
	ID   string
	Time time.Time
	Body []byte
	// End is the spool position just after this entry; acknowledging it
	// acknowledges this entry and everything before it.
	End Pos
}

// Pos is a position in the spool: a segment number and a byte offset in it.
type Pos struct {
	Seg uint64
	Off int64
}

// Less reports whether p is before q.
func (p Pos) Less(q Pos) bool { return p.Seg < q.Seg || (p.Seg == q.Seg && p.Off < q.Off) }

// AppendFrame appends the frame holding payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	var h [headerSize]byte
	h[0], h[1] = magic0, magic1
	binary.LittleEndian.PutUint32(h[2:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[6:], crc32.Checksum(payload, castagnoli))
	return append(append(dst, h[:]...), payload...)
}

// FrameLen checks a frame header and returns the payload length it announces.
func FrameLen(h []byte, max int) (int, error) {
	if len(h) < headerSize {
		return 0, ErrShort
	}
	if h[0] != magic0 || h[1] != magic1 {
		return 0, ErrMagic
	}
	n := binary.LittleEndian.Uint32(h[2:])
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("%w: %d > %d", ErrTooLarge, n, max)
	}
	return int(n), nil
}

// DecodeFrame decodes the frame at the start of b and returns its payload
// (aliasing b) and the frame's total length.
func DecodeFrame(b []byte, max int) (payload []byte, n int, err error) {
	plen, err := FrameLen(b, max)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-headerSize < plen {
		return nil, 0, ErrShort
	}
	payload = b[headerSize : headerSize+plen]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[6:]) {
		return nil, 0, ErrChecksum
	}
	return payload, headerSize + plen, nil
}

// Resync returns the offset in b of the first frame at or after 1 that
// decodes cleanly, or -1.
func Resync(b []byte, max int) int {
	for i := 1; i+headerSize <= len(b); i++ {
		if b[i] != magic0 || b[i+1] != magic1 {
			continue
		}
		if _, _, err := DecodeFrame(b[i:], max); err == nil {
			return i
		}
	}
	return -1
}

// EncodeEntry returns the payload of an entry.
func EncodeEntry(id string, t time.Time, body []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*2+len(id)+len(body))
	b = append(b, entryV1)
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = binary.AppendVarint(b, t.UnixNano())
	return append(b, body...)
}

// DecodeEntry decodes an entry payload. Body aliases p.
func DecodeEntry(p []byte) (Entry, error) {
	if len(p) == 0 || p[0] != entryV1 {
		return Entry{}, fmt.Errorf("%w: unknown version", ErrEntry)
	}
	p = p[1:]
	idLen, n := binary.Uvarint(p)
	if n <= 0 || idLen > uint64(len(p)-n) {
		return Entry{}, fmt.Errorf("%w: bad id length", ErrEntry)
	}
	p = p[n:]
	id := string(p[:idLen])
	p = p[idLen:]
	ns, n := binary.Varint(p)
	if n <= 0 {
		return Entry{}, fmt.Errorf("%w: bad time", ErrEntry)
	}
	return Entry{ID: id, Time: time.Unix(0, ns), Body: p[n:]}, nil
}

// The cursor file records how far delivery has been acknowledged:
//
//	"CDRC" | version 1 | segment (uint64 LE) | offset (uint64 LE) | CRC32C of the preceding bytes
const cursorSize = 4 + 1 + 8 + 8 + 4

// ErrCursor reports an unreadable cursor file.
var ErrCursor = errors.New("spool: bad cursor")

// EncodeCursor returns the bytes of a cursor file.
func EncodeCursor(p Pos) []byte {
	b := make([]byte, 0, cursorSize)
	b = append(b, "CDRC"...)
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint64(b, p.Seg)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Off))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeCursor decodes a cursor file.
func DecodeCursor(b []byte) (Pos, error) {
	if len(b) != cursorSize || string(b[:4]) != "CDRC" || b[4] != 1 {
		return Pos{}, fmt.Errorf("%w: bad header or length %d", ErrCursor, len(b))
	}
	if crc32.Checksum(b[:cursorSize-4], castagnoli) != binary.LittleEndian.Uint32(b[cursorSize-4:]) {
		return Pos{}, fmt.Errorf("%w: checksum mismatch", ErrCursor)
	}
	off := binary.LittleEndian.Uint64(b[13:])
	if off > 1<<62 {
		return Pos{}, fmt.Errorf("%w: offset out of range", ErrCursor)
	}
	return Pos{Seg: binary.LittleEndian.Uint64(b[5:]), Off: int64(off)}, nil
}
