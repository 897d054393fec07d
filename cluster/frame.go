package cluster

import (
	"encoding/binary"
	"fmt"
)

// Wire format of a frame on a cluster connection, after the handshake:
//
//	length uint32 (big endian, bytes that follow, at most the frame cap)
//	type   uint8
//	body   depends on type:
//	  data:    channel uint8, seq uvarint, payload (rest)
//	  ping:    8 bytes, the sender's timestamp, echoed in the pong
//	  pong:    8 bytes, the echoed timestamp
//	  goodbye: empty; the sender is leaving the cluster
//
// The length prefix keeps the stream in sync: a frame with an unknown type or
// a bad body is skipped and counted, and only a length over the cap (which
// cannot be trusted) closes the connection.
type frameType uint8

const (
	frameData    frameType = 1
	framePing    frameType = 2
	framePong    frameType = 3
	frameGoodbye frameType = 4
)

const (
	lenPrefix = 4
	// frameOverhead is the most a data frame adds to its payload: the
	// length, type, channel and a 10-byte uvarint.
	frameOverhead = lenPrefix + 1 + 1 + binary.MaxVarintLen64
	// maxFrameLimit caps MaxMessageSize whatever the configuration says.
	maxFrameLimit = 64 << 20
	pingBodyLen   = 1 + 8
)

// frame is a decoded frame body. Payload aliases the decoded buffer.
type frame struct {
	typ     frameType
	channel Channel
	seq     uint64
	stamp   uint64 // ping and pong
	payload []byte
}

// appendData appends a data frame to dst.
func appendData(dst []byte, ch Channel, seq uint64, payload []byte) []byte {
	var hdr [frameOverhead]byte
	n := binary.PutUvarint(hdr[lenPrefix+2:], seq)
	body := 2 + n + len(payload)
	binary.BigEndian.PutUint32(hdr[:lenPrefix], uint32(body))
	hdr[lenPrefix] = byte(frameData)
	hdr[lenPrefix+1] = byte(ch)
	dst = append(dst, hdr[:lenPrefix+2+n]...)
	return append(dst, payload...)
}

// appendStamp appends a ping or pong frame to dst.
func appendStamp(dst []byte, t frameType, stamp uint64) []byte {
	var b [lenPrefix + pingBodyLen]byte
	binary.BigEndian.PutUint32(b[:lenPrefix], pingBodyLen)
	b[lenPrefix] = byte(t)
	binary.BigEndian.PutUint64(b[lenPrefix+1:], stamp)
	return append(dst, b[:]...)
}

// appendGoodbye appends a goodbye frame to dst.
func appendGoodbye(dst []byte) []byte {
	return append(dst, 0, 0, 0, 1, byte(frameGoodbye))
}

// frameError is a frame body that does not decode. The stream stays in sync
// (the length was valid), so the frame is skipped.
type frameError struct{ reason string }

func (e *frameError) Error() string { return "cluster: malformed frame: " + e.reason }
func (e *frameError) Unwrap() error { return ErrMalformedFrame }

// decodeBody decodes one frame body (the bytes after the length prefix).
// It never panics and never allocates.
func decodeBody(b []byte) (frame, error) {
	if len(b) == 0 {
		return frame{}, &frameError{"empty frame"}
	}
	f := frame{typ: frameType(b[0])}
	b = b[1:]
	switch f.typ {
	case frameData:
		if len(b) < 2 {
			return frame{}, &frameError{"short data frame"}
		}
		f.channel = Channel(b[0])
		seq, n := binary.Uvarint(b[1:])
		if n <= 0 {
			return frame{}, &frameError{"bad sequence number"}
		}
		if seq == 0 {
			return frame{}, &frameError{"sequence number 0"}
		}
		f.seq = seq
		f.payload = b[1+n:]
	case framePing, framePong:
		if len(b) != 8 {
			return frame{}, &frameError{"ping/pong body is not 8 bytes"}
		}
		f.stamp = binary.BigEndian.Uint64(b)
	case frameGoodbye:
		if len(b) != 0 {
			return frame{}, &frameError{"goodbye with a body"}
		}
	default:
		return frame{}, &frameError{fmt.Sprintf("unknown frame type %d", f.typ)}
	}
	return f, nil
}
