package usrloc

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
)

// BenchmarkRegistrarUDP drives REGISTERs over real UDP into a sipgo server
// with the registrar, with replication off and with replication to two
// peers over loopback TCP, in the same run. Each reports REGISTER/s; the
// ratio is the cost of replication.
func BenchmarkRegistrarUDP(b *testing.B) {
	var off, on float64
	b.Run("replication-off", func(b *testing.B) {
		st := newTestStore(b, Config{Node: "n1"})
		off = driveRegistrar(b, st)
	})
	b.Run("replication-2-peers", func(b *testing.B) {
		nodes, _ := loopbackNodesB(b, 3)
		on = driveRegistrar(b, nodes[0].st)
		clustertestEventually(b, func() bool { return nodes[1].st.Len() == nodes[0].st.Len() && nodes[2].st.Len() == nodes[0].st.Len() })
	})
	if off > 0 {
		b.Logf("throughput ratio with replication / without: %.2f (%.0f vs %.0f REGISTER/s)", on/off, on, off)
	}
}

func clustertestEventually(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("peers did not catch up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// driveRegistrar sends b.N REGISTERs (distinct AORs) with at most 256
// outstanding and returns the answered rate.
func driveRegistrar(b *testing.B, st *Store) float64 {
	r, err := NewRegistrar(st, RegistrarConfig{Logger: clustertest.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	addr := sipServer(b, r.Handle)
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp", addr)
	local := conn.LocalAddr().String()
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK-%d;rport\r\n"+
			"Max-Forwards: 70\r\nTo: <sip:bench%d@example.com>\r\nFrom: <sip:bench%d@example.com>;tag=%d\r\n"+
			"Call-ID: %08x-bench@192.0.2.1\r\nCSeq: 1 REGISTER\r\n"+
			"Contact: <sip:bench%d@192.0.2.1:5060;transport=udp>;expires=3600\r\n"+
			"User-Agent: Yealink SIP-T46U 108.86.0.20\r\nContent-Length: 0\r\n\r\n", local, i, i, i, i, i, i))
	}
	conn.(*net.UDPConn).SetReadBuffer(4 << 20)
	// A lost datagram must not stall the window: the sender counts a
	// request lost once nothing was answered for stall.
	const window = 512
	const stall = 50 * time.Millisecond
	var answered, lastAt atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for answered.Load() < int64(b.N) {
			conn.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 12 && string(buf[:12]) == "SIP/2.0 200 " {
				answered.Add(1)
				lastAt.Store(time.Now().UnixNano())
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	lastAt.Store(start.UnixNano())
	lost := int64(0)
	for i := range msgs {
		for int64(i)-answered.Load()-lost >= window {
			if time.Since(time.Unix(0, lastAt.Load())) > stall {
				lost++
				continue
			}
			time.Sleep(20 * time.Microsecond)
		}
		if _, err := conn.WriteTo(msgs[i], dst); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	el := time.Unix(0, lastAt.Load()).Sub(start)
	b.StopTimer()
	got := answered.Load()
	if got < int64(b.N)*95/100 {
		b.Fatalf("%d of %d answered", got, b.N)
	}
	rate := float64(got) / el.Seconds()
	b.ReportMetric(rate, "REGISTER/s")
	b.ReportMetric(float64(int64(b.N)-got), "unanswered")
	return rate
}
