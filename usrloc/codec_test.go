package usrloc

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleWire() wireRec {
	return wireRec{AOR: "sip:alice@example.com", F: fields{Contact: "sip:alice@192.0.2.1:5060", Received: "192.0.2.1:5060",
		CallID: "abc", Instance: "<urn:uuid:1>", UserAgent: "ua", Path: "<sip:p;lr>", Socket: "udp:10.0.0.1:5060",
		RegID: 1, CSeq: 7, Q: 500, Flags: 3}, Remaining: 3 * time.Second, HLC: 12345, Node: "n1"}
}

func sampleMessages() []message {
	w := sampleWire()
	t := w
	t.Tombstone = true
	digests := make([]bucketSum, nBuckets)
	digests[7] = bucketSum{count: 2, sum: 99}
	return []message{
		{typ: msgUpdates, recs: []wireRec{w, t}},
		{typ: msgSyncReq, id: 9, buckets: []int{17, 4095, 0}},
		{typ: msgSyncChunk, id: 9, seq: 3, cursor: 20, last: true, recs: []wireRec{w}},
		{typ: msgSyncChunk, id: 9, seq: 1, last: true, refused: true},
		{typ: msgSyncAck, id: 9, seq: 3},
		{typ: msgDigest, id: 4, reply: true, digests: digests},
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(m message) message {
	if len(m.recs) == 0 {
		m.recs = nil
	}
	if len(m.digests) == 0 {
		m.digests = nil
	}
	if len(m.buckets) == 0 {
		m.buckets = nil
	}
	return m
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b := encode(nil, &m)
		var got message
		if err := decode(b, &got); err != nil {
			t.Fatalf("type %d: %v", m.typ, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("type %d round trip:\n got %+v\nwant %+v", m.typ, got, m)
		}
		// Every strict prefix is refused with an error.
		for i := 0; i < len(b); i = nextPrefix(i) {
			if err := decode(b[:i], &got); !errors.Is(err, ErrMalformed) {
				t.Fatalf("type %d prefix %d: %v", m.typ, i, err)
			}
		}
	}
}

func TestCodecRejects(t *testing.T) {
	good := encode(nil, &message{typ: msgUpdates, recs: []wireRec{sampleWire()}})
	bad := map[string][]byte{
		"version":  append([]byte{9}, good[1:]...),
		"type":     {wireVersion, 99},
		"trailing": append(append([]byte(nil), good...), 0),
		"count":    {wireVersion, byte(msgUpdates), 0xff, 0xff, 0xff, 0x7f},
	}
	empty := sampleWire()
	empty.AOR = ""
	bad["empty aor"] = encode(nil, &message{typ: msgUpdates, recs: []wireRec{empty}})
	for name, b := range bad {
		var m message
		if err := decode(b, &m); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzDecode: no input panics the decoder, and whatever it accepts
// re-encodes to a message that decodes the same.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(encode(nil, &m))
	}
	f.Add([]byte{wireVersion, byte(msgUpdates), 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m message
		if err := decode(b, &m); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		again := encode(nil, &m)
		var m2 message
		if err := decode(again, &m2); err != nil {
			t.Fatalf("re-encoded message refused: %v", err)
		}
		if !reflect.DeepEqual(normalize(m), normalize(m2)) {
			t.Fatalf("round trip changed the message")
		}
		if !bytes.Equal(encode(nil, &m2), again) {
			t.Fatal("encoding not stable")
		}
	})
}

// nextPrefix walks every prefix length of short messages and a sample of
// long ones (the digest message is 40 KB).
func nextPrefix(i int) int {
	if i < 256 {
		return i + 1
	}
	return i + 97
}
