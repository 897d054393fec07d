package cluster_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

const benchMsgSize = 100

// BenchmarkThroughput sends 100-byte messages from one node to another over
// loopback TCP. The raw-bufio sub-benchmark is the baseline: the same frames
// written through a 64 KiB bufio.Writer on a bare net.Conn and parsed by a
// bare reader, with no queue, handshake, sequence numbers or liveness.
// Compare msg/s of the two in the same run:
//
//	go test -run '^$' -bench Throughput -count 6 ./cluster/ | tee /tmp/tp.txt
func BenchmarkThroughput(b *testing.B) {
	b.Run("sipha", benchSipha)
	b.Run("raw-bufio", benchRawBufio)
}

func benchPair(b *testing.B) (a, c *cluster.TCP) {
	addrs := freeLoopbackAddrs(b, 2)
	var trs []*cluster.TCP
	for i, id := range []cluster.NodeID{"a", "c"} {
		cfg := cluster.Config{ID: id, Listen: addrs[i], Secret: testSecret, Logger: clustertest.Logger(b),
			Peers: []cluster.Peer{{ID: []cluster.NodeID{"c", "a"}[i], Addr: addrs[1-i]}}}
		tr, err := cluster.NewTCP(b.Context(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		trs = append(trs, tr)
	}
	clustertest.WaitUp(b, asTransports(trs))
	return trs[0], trs[1]
}

func benchSipha(b *testing.B) {
	a, c := benchPair(b)
	var got atomic.Int64
	done := make(chan struct{})
	c.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(m cluster.Message) {
		if got.Add(1) == int64(b.N) {
			close(done)
		}
	}))
	payload := make([]byte, benchMsgSize)
	b.ReportAllocs()
	b.SetBytes(benchMsgSize)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for {
			err := a.Send("c", cluster.ChannelUser, payload)
			if err == nil {
				break
			}
			if !errors.Is(err, cluster.ErrQueueFull) {
				b.Fatal(err)
			}
			// A full queue refused the message: back off as an application
			// would (Send never blocks, so the caller paces itself) and send
			// it again, so exactly b.N messages arrive. Spinning here would
			// steal a core from the writer and the reader.
			time.Sleep(50 * time.Microsecond)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

func benchRawBufio(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	received := make(chan int64)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReaderSize(conn, 64<<10)
		var n int64
		for {
			hdr, err := br.Peek(4)
			if err != nil {
				break
			}
			size := int(binary.BigEndian.Uint32(hdr))
			if _, err := br.Discard(4 + size); err != nil {
				break
			}
			n++
		}
		received <- n
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(conn, 64<<10)
	frame := cluster.AppendData(nil, cluster.ChannelUser, 1, make([]byte, benchMsgSize))
	b.ReportAllocs()
	b.SetBytes(benchMsgSize)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := bw.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	bw.Flush()
	conn.(*net.TCPConn).CloseWrite()
	if n := <-received; n != int64(b.N) {
		b.Fatalf("received %d frames of %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	conn.Close()
}

// BenchmarkLatency sends 100-byte messages at 10,000 per second and reports
// the one-way latency percentiles (sender and receiver share a clock):
//
//	go test -run '^$' -bench Latency -benchtime 20000x ./cluster/
func BenchmarkLatency(b *testing.B) {
	a, c := benchPair(b)
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	c.Handle(cluster.ChannelUser, cluster.HandlerFunc(func(m cluster.Message) {
		sent := int64(binary.BigEndian.Uint64(m.Payload))
		lat = append(lat, time.Duration(time.Now().UnixNano()-sent))
		if len(lat) == b.N {
			close(done)
		}
	}))
	payload := make([]byte, benchMsgSize)
	const interval = 100 * time.Microsecond // 10k msg/s
	b.ResetTimer()
	next := time.Now()
	for i := 0; i < b.N; i++ {
		// Sleep, not spin: a spinning sender would hold one of the two
		// cores the writer and reader need.
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		if err := a.Send("c", cluster.ChannelUser, payload); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.Fatalf("only %d of %d messages arrived", len(lat), b.N)
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
}

// TestSendPathAllocs checks that a message costs no heap allocation on the
// send path (Send, the writer's batch) nor on the receive path in steady
// state. AllocsPerRun counts every goroutine's allocations, so the writer
// and reader goroutines are included.
func TestSendPathAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	addrs := freeLoopbackAddrs(t, 2)
	trs := startTCP(t, []cluster.NodeID{"a", "c"}, nil, func(i int) string { return addrs[i] }, nil)
	clustertest.WaitUp(t, asTransports(trs))
	var got atomic.Int64
	trs[1].Handle(cluster.ChannelUser, cluster.HandlerFunc(func(cluster.Message) { got.Add(1) }))
	payload := make([]byte, benchMsgSize)
	send := func() {
		for i := 0; i < 100; i++ {
			trs[0].Send("c", cluster.ChannelUser, payload)
		}
	}
	for i := 0; i < 200; i++ { // warm the buffers up
		send()
	}
	allocs := testing.AllocsPerRun(200, send) / 100
	t.Logf("%.4f allocations per message", allocs)
	// Heartbeats and timers allocate a little now and then; per message that
	// must round to zero.
	if allocs > 0.01 {
		t.Fatalf("%.4f allocations per message, want 0", allocs)
	}
}
