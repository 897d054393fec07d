package clustertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestAddrsAndEcho(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 1})
	c, s := connect(t, n, "a", "b", 7000)
	if got := c.RemoteAddr().String(); got != "b:7000" {
		t.Errorf("client remote = %q, want b:7000", got)
	}
	if c.LocalAddr().Network() != "mem" || c.RemoteAddr().Network() != "mem" {
		t.Errorf("network = %q, want mem", c.LocalAddr().Network())
	}
	la := c.LocalAddr().(Addr)
	if la.Host != "a" || la.Port < firstEphemeral {
		t.Errorf("client local = %v, want a:<ephemeral>", la)
	}
	if s.LocalAddr() != c.RemoteAddr() || s.RemoteAddr() != c.LocalAddr() {
		t.Errorf("server addrs %v/%v do not mirror client %v/%v", s.LocalAddr(), s.RemoteAddr(), c.LocalAddr(), c.RemoteAddr())
	}
	mustWrite(t, c, "ping")
	expectRead(t, s, "ping")
	mustWrite(t, s, "pong")
	expectRead(t, c, "pong")
	if got := n.Delivered("a", "b"); got != 4 {
		t.Errorf("Delivered(a,b) = %d, want 4", got)
	}
}

// TestConcurrentWritesInOrder writes records from several goroutines through
// a buffer smaller than a record: every record must arrive whole (Writes do
// not interleave) and each writer's records in order.
func TestConcurrentWritesInOrder(t *testing.T) {
	CheckLeaks(t)
	const writers, records, size = 4, 300, 48
	n := newNet(t, Config{Seed: 2, BufferSize: 20})
	c, s := connect(t, n, "a", "b", 1)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rec := make([]byte, size)
			for i := range records {
				binary.BigEndian.PutUint32(rec[0:], uint32(w))
				binary.BigEndian.PutUint32(rec[4:], uint32(i))
				for j := 8; j < size; j++ {
					rec[j] = byte(w*31 + i + j)
				}
				if _, err := c.Write(rec); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	rec := make([]byte, size)
	for range writers * records {
		if _, err := io.ReadFull(s, rec); err != nil {
			t.Fatal(err)
		}
		w, i := int(binary.BigEndian.Uint32(rec[0:])), int(binary.BigEndian.Uint32(rec[4:]))
		if w >= writers || i != next[w] {
			t.Fatalf("record (writer %d, seq %d) out of order; want seq %d", w, i, next[min(w, writers-1)])
		}
		for j := 8; j < size; j++ {
			if rec[j] != byte(w*31+i+j) {
				t.Fatalf("record (writer %d, seq %d) corrupt at byte %d", w, i, j)
			}
		}
		next[w]++
	}
	wg.Wait()
}

func TestLargeTransfer(t *testing.T) {
	CheckLeaks(t)
	const total = 8 << 20
	n := newNet(t, Config{Seed: 3})
	c, s := connect(t, n, "a", "b", 1)
	data := make([]byte, total)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	want := sha256.Sum256(data)
	errc := make(chan error, 1)
	go func() {
		// Uneven write sizes cross chunk and buffer boundaries.
		for off := 0; off < total; {
			m := min(1+r.IntN(300_000), total-off)
			if _, err := c.Write(data[off : off+m]); err != nil {
				errc <- err
				return
			}
			off += m
		}
		errc <- c.Close()
	}()
	h := sha256.New()
	got, err := io.Copy(h, s)
	if err != nil || got != total {
		t.Fatalf("copied %d bytes, err %v; want %d", got, err, total)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("received bytes differ from sent bytes")
	}
	if d := n.Delivered("a", "b"); d != total {
		t.Errorf("Delivered(a,b) = %d, want %d", d, total)
	}
}

func TestDelayHonoured(t *testing.T) {
	CheckLeaks(t)
	const d = 30 * time.Millisecond
	n := newNet(t, Config{Seed: 4})
	n.SetLinkDelay("a", "b", d)
	c, s := connect(t, n, "a", "b", 1)
	start := time.Now()
	mustWrite(t, c, "x")
	readN(t, s, 1)
	if el := time.Since(start); el < d {
		t.Fatalf("byte arrived after %v, before the %v delay", el, d)
	}
	// The other direction has no delay of its own but the default (zero).
	if got := n.delayOf("b", "a"); got != 0 {
		t.Fatalf("delay b->a = %v, want 0", got)
	}
}

func TestReadDeadline(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 5})
	c, _ := connect(t, n, "a", "b", 1)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	if !isTimeout(err) {
		t.Fatalf("read past deadline: %v, want timeout", err)
	}
	// A deadline in the past fails at once, and keeps failing.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	for range 2 {
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("read with past deadline: %v, want timeout", err)
		}
	}
}

func TestWriteDeadlineWhenFull(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 6, BufferSize: 16})
	c, s := connect(t, n, "a", "b", 1)
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	m, err := c.Write(make([]byte, 40))
	if m != 16 || !isTimeout(err) {
		t.Fatalf("write into full buffer: n=%d err=%v; want 16 and a timeout", m, err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if m, err := c.Write([]byte("x")); m != 0 || !isTimeout(err) {
		t.Fatalf("write with past deadline: n=%d err=%v", m, err)
	}
	// Reading makes room; clearing the deadline lets writes go on.
	readN(t, s, 16)
	c.SetWriteDeadline(time.Time{})
	mustWrite(t, c, "more")
	expectRead(t, s, "more")
}

// TestDeadlineChangeWakes moves the deadline of a blocked Read into the past:
// the Read must return at once instead of waiting for the old deadline.
func TestDeadlineChangeWakes(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 7, BufferSize: 4})
	c, _ := connect(t, n, "a", "b", 1)
	for _, tc := range []struct {
		name string
		call func() error
		set  func(time.Time) error
	}{
		{"read", func() error { _, err := c.Read(make([]byte, 1)); return err }, c.SetReadDeadline},
		{"write", func() error { _, err := c.Write(make([]byte, 100)); return err }, c.SetWriteDeadline},
	} {
		tc.set(time.Now().Add(time.Hour))
		errc := make(chan error, 1)
		go func() { errc <- tc.call() }()
		time.Sleep(10 * time.Millisecond) // let it block (either order passes)
		tc.set(time.Now().Add(-time.Second))
		if err := <-errc; !isTimeout(err) {
			t.Fatalf("%s after deadline moved: %v, want timeout", tc.name, err)
		}
	}
}

func TestCloseEOF(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 8})
	n.SetDelay(5 * time.Millisecond)
	c, s := connect(t, n, "a", "b", 1)
	mustWrite(t, c, "last words")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(s); string(got) != "last words" || err != nil {
		t.Fatalf("peer read %q, %v; want the data then EOF", got, err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on closed conn: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v, want net.ErrClosed", err)
	}
	// Writing to a peer that closed: the bytes vanish, then a reset.
	if _, err := s.Write([]byte("anyone?")); err != nil {
		t.Fatalf("first write after peer close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Write([]byte("x"))
		if isReset(err) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("write to closed peer: %v, want ECONNRESET", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseUnblocksReadAndWrite(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 9, BufferSize: 8})
	c, _ := connect(t, n, "a", "b", 1)
	errc := make(chan error, 2)
	go func() { _, err := c.Read(make([]byte, 1)); errc <- err }()
	go func() { _, err := c.Write(make([]byte, 100)); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	for range 2 {
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked call after Close: %v, want net.ErrClosed", err)
		}
	}
}

func TestCloseWriteHalfClose(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 31})
	c, s := connect(t, n, "a", "b", 1)
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("conn has no CloseWrite")
	}
	mustWrite(t, c, "request")
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write after CloseWrite: %v, want EPIPE", err)
	}
	if got, err := io.ReadAll(s); string(got) != "request" || err != nil {
		t.Fatalf("peer read %q, %v; want the request then EOF", got, err)
	}
	// The other direction still works.
	mustWrite(t, s, "response")
	s.Close()
	if got, err := io.ReadAll(c); string(got) != "response" || err != nil {
		t.Fatalf("read %q, %v; want the response then EOF", got, err)
	}
}

// TestPastDeadlineWithDataWaiting: like package net, a passed read deadline
// fails the Read even when bytes are waiting, and they stay readable.
func TestPastDeadlineWithDataWaiting(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 32})
	c, s := connect(t, n, "a", "b", 1)
	mustWrite(t, c, "waiting")
	s.SetReadDeadline(time.Now().Add(-time.Second))
	if m, err := s.Read(make([]byte, 16)); m != 0 || !isTimeout(err) {
		t.Fatalf("read past deadline: n=%d err=%v; want a timeout", m, err)
	}
	expectRead(t, s, "waiting")
}
