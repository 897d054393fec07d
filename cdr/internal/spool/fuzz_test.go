package spool

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr/internal/crashfs"
)

func FuzzDecodeFrame(f *testing.F) {
	good := AppendFrame(nil, EncodeEntry("abc", time.Unix(1, 2), []byte(`{"a":1}`)))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(append([]byte{0xC5, 0xD7, 0, 0}, good...), good...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, n, err := DecodeFrame(b, 1<<16)
		if err == nil {
			if n > len(b) || n != headerSize+len(payload) {
				t.Fatalf("frame length %d of %d bytes", n, len(b))
			}
			if e, err := DecodeEntry(payload); err == nil {
				again := EncodeEntry(e.ID, e.Time, e.Body)
				if !bytes.Equal(again, payload) && e.Time.UnixNano() == e.Time.UnixNano() {
					// Varint encodings are not unique; only check it decodes back.
					if e2, err := DecodeEntry(again); err != nil || e2.ID != e.ID || !bytes.Equal(e2.Body, e.Body) {
						t.Fatalf("re-encoding differs: %v", err)
					}
				}
			}
		}
		if i := Resync(b, 1<<16); i >= 0 {
			if _, _, err := DecodeFrame(b[i:], 1<<16); err != nil {
				t.Fatalf("Resync pointed at a bad frame: %v", err)
			}
		}
	})
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry("id", time.Unix(0, 5), []byte("body")))
	f.Add([]byte{1, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err == nil && len(e.ID)+len(e.Body) > len(b) {
			t.Fatal("decoded more than the input")
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(Pos{Seg: 3, Off: 77}))
	f.Add([]byte("CDRC"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeCursor(b)
		if err == nil && !bytes.Equal(EncodeCursor(p), b) {
			t.Fatal("cursor does not re-encode to its input")
		}
	})
}

// FuzzSegmentReplay feeds arbitrary bytes as a segment left by an earlier
// process: opening and draining must never panic, every entry it yields must
// be intact, and the spool must go on accepting appends.
func FuzzSegmentReplay(f *testing.F) {
	var seg []byte
	for _, id := range []string{"a", "b", "c"} {
		seg = AppendFrame(seg, EncodeEntry(id, time.Unix(9, 0), []byte(`{"x":"`+id+`"}`)))
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-4])
	f.Add(append([]byte{0xC5, 0xD7, 0xFF, 0xFF, 0xFF, 0x7F}, seg...))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := crashfs.New()
		_ = fs.MkdirAll("/spool")
		w, _ := fs.Create(filepath.Join("/spool", "00000000000000000001.seg"))
		_, _ = w.Write(b)
		_ = w.Sync()
		_ = fs.SyncDir("/spool")
		s, err := Open(testOptions(fs))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Append(context.Background(), "new", time.Unix(1, 0), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		var last string
		for i := 0; i < 10000; i++ {
			es, err := s.Peek(8, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				last = e.ID
			}
			if err := s.Ack(es[len(es)-1].End); err != nil {
				t.Fatal(err)
			}
		}
		if last != "new" || !s.Empty() {
			t.Fatalf("replay did not end with the new entry: last %q", last)
		}
	})
}
