package spool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr/internal/crashfs"
	"github.com/sipha/sipha/cdr/internal/vfs"
)

func testOptions(fs vfs.FS) Options {
	return Options{FS: fs, Dir: "/spool", SegmentBytes: 4 << 10, MaxBytes: 1 << 20, MaxRecordBytes: 1 << 10}
}

func mustOpen(t *testing.T, o Options) *Spool {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendN(t *testing.T, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(context.Background(), fmt.Sprintf("id-%04d", i), time.Unix(int64(i), 0), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// drain reads and acknowledges everything, returning the IDs in order.
func drain(t *testing.T, s *Spool, batch int) []string {
	t.Helper()
	var ids []string
	for {
		es, err := s.Peek(batch, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return ids
		}
		for _, e := range es {
			if want := fmt.Sprintf(`{"n":%s}`, e.ID[3:]); string(e.Body) != want[:5]+trimZeros(e.ID[3:])+"}" {
				t.Fatalf("entry %s has body %s", e.ID, e.Body)
			}
			ids = append(ids, e.ID)
		}
		if err := s.Ack(es[len(es)-1].End); err != nil {
			t.Fatal(err)
		}
	}
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func wantIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("id-%04d", i))
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRoundTripAcrossSegmentsAndRestart(t *testing.T) {
	fs := crashfs.New()
	s := mustOpen(t, testOptions(fs))
	appendN(t, s, 0, 300)
	if n := s.Stats().Segments; n < 2 {
		t.Fatalf("want several segments, have %d", n)
	}
	es, err := s.Peek(100, 1<<20)
	if err != nil || len(es) != 100 {
		t.Fatalf("peek: %d entries, %v", len(es), err)
	}
	if err := s.Ack(es[99].End); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = mustOpen(t, testOptions(fs))
	defer s.Close()
	if got := drain(t, s, 7); !equal(got, wantIDs(100, 300)) {
		t.Fatalf("after restart got %d ids, first %v", len(got), got[:min(3, len(got))])
	}
	if !s.Empty() {
		t.Fatal("spool not empty after draining")
	}
	if st := s.Stats(); st.Segments > 1 {
		t.Fatalf("acknowledged segments not deleted: %+v", st)
	}
}

func TestTornTailReplaysCleanly(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			fs := crashfs.New()
			s := mustOpen(t, testOptions(fs))
			appendN(t, s, 0, 50)
			// Unsynced bytes after the last acknowledged append: a torn write.
			if _, err := s.activeF.Write(AppendFrame(nil, EncodeEntry("torn", time.Now(), []byte(`{"torn":true}`)))); err != nil {
				t.Fatal(err)
			}
			fs.Crash()
			_ = s.Close()
			fs2 := fs.Restart(rand.New(rand.NewPCG(seed, 0)))
			s2 := mustOpen(t, testOptions(fs2))
			defer s2.Close()
			appendN(t, s2, 50, 60)
			got := drain(t, s2, 16)
			var clean []string
			for _, id := range got {
				if id != "torn" {
					clean = append(clean, id)
				}
			}
			if !equal(clean, wantIDs(0, 60)) {
				t.Fatalf("got %v", got)
			}
		})
	}
}

func TestDamagedFrameSkipsOnlyItself(t *testing.T) {
	fs := crashfs.New()
	s := mustOpen(t, testOptions(fs))
	appendN(t, s, 0, 20)
	_ = s.Close()
	seg := filepath.Join("/spool", fmt.Sprintf("%020d%s", 1, segSuffix))
	data, _ := fs.Bytes(seg)
	// Flip a byte inside the payload of the sixth frame.
	off := 0
	for i := 0; i < 5; i++ {
		_, n, err := DecodeFrame(data[off:], 1<<10)
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if err := fs.Corrupt(seg, off+headerSize+3, []byte{0xFF}); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, testOptions(fs))
	defer s.Close()
	got := drain(t, s, 4)
	want := append(wantIDs(0, 5), wantIDs(6, 20)...)
	if !equal(got, want) {
		t.Fatalf("got %v", got)
	}
	if s.Stats().SkippedBytes == 0 {
		t.Fatal("damage not counted")
	}
}

func TestFullRejectsOrBlocks(t *testing.T) {
	o := testOptions(crashfs.New())
	o.MaxBytes, o.SegmentBytes = 2<<10, 512
	s := mustOpen(t, o)
	var err error
	n := 0
	for ; err == nil; n++ {
		err = s.Append(context.Background(), fmt.Sprintf("id-%04d", n), time.Now(), []byte(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`))
	}
	if !errors.Is(err, ErrFull) || s.Stats().Rejected != 1 {
		t.Fatalf("want ErrFull after %d appends, got %v", n, err)
	}
	_ = s.Close()

	o.Block = true
	s = mustOpen(t, o)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Append(ctx, "blocked", time.Now(), []byte(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a blocked append to time out, got %v", err)
	}
	// Requeue is the reader's own move; it must never wait for the reader.
	if err := s.Requeue(context.Background(), "requeue", time.Now(), []byte(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)); !errors.Is(err, ErrFull) {
		t.Fatalf("Requeue on a full blocking spool: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.Append(context.Background(), "waits", time.Now(), []byte(`{}`))
	}()
	// Delivering the oldest segments frees space for the waiting append.
	for i := 0; i < 3; i++ {
		es, err := s.Peek(4, 1<<20)
		if err != nil || len(es) == 0 {
			t.Fatalf("peek: %v", err)
		}
		if err := s.Ack(es[len(es)-1].End); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("append after space freed: %v", err)
	}
}

func TestCursorLossOnlyRedelivers(t *testing.T) {
	fs := crashfs.New()
	o := testOptions(fs)
	o.CursorEvery = time.Hour
	s := mustOpen(t, o)
	appendN(t, s, 0, 10)
	es, _ := s.Peek(3, 1<<20)
	_ = s.Ack(es[2].End) // first ack writes the cursor (never saved before)
	es, _ = s.Peek(3, 1<<20)
	_ = s.Ack(es[2].End) // within CursorEvery: not saved
	fs.Crash()
	_ = s.Close()
	s = mustOpen(t, testOptions(fs.Restart(nil)))
	defer s.Close()
	if got := drain(t, s, 100); !equal(got, wantIDs(3, 10)) {
		t.Fatalf("got %v", got)
	}
}
