package cluster

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkReceivePath measures the inbound reader alone: decoding frames
// from a buffer and handing them to a handler, no network.
func BenchmarkReceivePath(b *testing.B) {
	tr, err := NewTCP(context.Background(), Config{ID: "r", Listen: "127.0.0.1:0", Insecure: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	var n int
	tr.Handle(ChannelUser, HandlerFunc(func(Message) { n++ }))
	// A 4096-frame stream replayed: small enough to stay in cache, so the
	// figure is the reader's cost, not memory bandwidth.
	const frames = 4096
	var stream []byte
	payload := make([]byte, 100)
	for i := 1; i <= frames; i++ {
		stream = appendData(stream, ChannelUser, uint64(i), payload)
	}
	p := newPeer(tr, "s", "127.0.0.1:9")
	defer p.cancel()
	gen := p.attachInbound(nopConn{}, 1)
	rd := bytes.NewReader(stream)
	br := bufio.NewReaderSize(rd, readBufSize)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += frames {
		p.lastSeq[ChannelUser] = 0 // the replayed stream numbers from 1 again
		rd.Reset(stream)
		br.Reset(rd)
		tr.readInbound(p, nopConn{}, br, gen)
	}
	b.StopTimer()
	if n < b.N {
		b.Fatalf("delivered %d of %d", n, b.N)
	}
}

// BenchmarkSendPath measures Send alone into a queue that a goroutine-free
// drain empties: locking, framing and copying.
func BenchmarkSendPath(b *testing.B) {
	tr, err := NewTCP(context.Background(), Config{ID: "s", Listen: "127.0.0.1:0", Insecure: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	p := newPeer(tr, "r", "127.0.0.1:9")
	defer p.cancel()
	payload := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.enqueue(ChannelUser, payload); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 { // drain as the writer would
			p.mu.Lock()
			p.pending, p.queued = p.pending[:0], 0
			p.mu.Unlock()
		}
	}
}
