package cluster

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzDecodeBody: any frame body decodes or errors, never panics, and a
// decoded data frame survives a round trip through the encoder.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendData(nil, ChannelUser, 1, []byte("payload"))[lenPrefix:])
	f.Add(appendStamp(nil, framePing, 42)[lenPrefix:])
	f.Add(appendGoodbye(nil)[lenPrefix:])
	f.Add([]byte{1, 5, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := decodeBody(body)
		if err != nil {
			return
		}
		if fr.typ == frameData {
			again, err := decodeBody(appendData(nil, fr.channel, fr.seq, fr.payload)[lenPrefix:])
			if err != nil || again.channel != fr.channel || again.seq != fr.seq || !bytes.Equal(again.payload, fr.payload) {
				t.Fatalf("round trip changed the frame: %+v -> %+v (%v)", fr, again, err)
			}
		}
	})
}

// FuzzReadHello: any handshake bytes parse or error, never panic.
func FuzzReadHello(f *testing.F) {
	h := hello{kind: StreamCluster, minVer: 1, maxVer: 1, id: "n1", cluster: "sipha", addr: "127.0.0.1:1"}
	f.Add(h.marshal())
	f.Add([]byte("SPHA"))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, _, err := readHello(bufio.NewReader(bytes.NewReader(in)))
		if err == nil && (got.id == "" || got.minVer == 0 || got.minVer > got.maxVer) {
			t.Fatalf("accepted an invalid hello: %+v", got)
		}
	})
}

// FuzzInboundStream feeds arbitrary bytes to the inbound reader, as an
// authenticated but hostile peer would, and checks it never panics and
// never delivers a sequence number twice.
func FuzzInboundStream(f *testing.F) {
	var seed []byte
	seed = appendData(seed, ChannelUser, 1, []byte("a"))
	seed = appendStamp(seed, framePing, 7)
	seed = appendData(seed, ChannelUser, 3, []byte("b"))
	seed = appendGoodbye(seed)
	f.Add(seed)
	f.Add([]byte{0, 0, 0, 2, 1, 128})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	tr, err := NewTCP(context.Background(), Config{ID: "fuzz", Listen: "127.0.0.1:0", Insecure: true,
		MaxMessageSize: 1 << 10, QueueBytes: 1 << 16, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	defer tr.Close()
	f.Fuzz(func(t *testing.T, stream []byte) {
		p := newPeer(tr, "hostile", "127.0.0.1:9")
		defer p.cancel()
		last := map[Channel]uint64{}
		tr.Handle(ChannelUser, HandlerFunc(func(m Message) {
			if m.Seq <= last[m.Channel] {
				t.Fatalf("sequence %d delivered after %d", m.Seq, last[m.Channel])
			}
			last[m.Channel] = m.Seq
		}))
		gen := p.attachInbound(nopConn{}, 1)
		tr.readInbound(p, nopConn{}, bufio.NewReaderSize(bytes.NewReader(stream), readBufSize), gen)
	})
}

// nopConn is a connection whose writes vanish, for the fuzzer.
type nopConn struct{ net.Conn }

func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
