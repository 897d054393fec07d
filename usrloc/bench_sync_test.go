package usrloc

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// BenchmarkSync1M: a node joins a node holding 1M realistic bindings over
// loopback TCP; the time is until it reports synced (verified). Donor and
// joiner share this process, and so one heap: each garbage collection
// marks both stores.
func BenchmarkSync1M(b *testing.B) { benchSync(b, 1_000_000, false) }

// BenchmarkSync1MApart is BenchmarkSync1M with the donor in a process of
// its own, as in a deployment (it still shares this host's cores).
func BenchmarkSync1MApart(b *testing.B) { benchSync(b, 1_000_000, true) }

// BenchmarkSync100k is BenchmarkSync1M with 100k bindings.
func BenchmarkSync100k(b *testing.B) { benchSync(b, 100_000, false) }

func BenchmarkSync300k(b *testing.B) { benchSync(b, 300_000, false) }

func benchSync(b *testing.B, n int, apart bool) {
	for range b.N {
		id, addr := cluster.NodeID(donorID), ""
		if apart {
			addr = clustertest.LoopbackAddrs(b, 1)[0]
			startDonorProcess(b, addr, n)
		} else {
			nodes, _ := loopbackNodesB(b, 1)
			fill(b, nodes[0].st, n)
			id, addr = nodes[0].id, nodes[0].addr
		}
		if f := os.Getenv("USRLOC_SYNC_PROFILE"); f != "" {
			// Profile the join only, not the fill.
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			pprof.StartCPUProfile(out)
			defer func() { pprof.StopCPUProfile(); out.Close() }()
		}
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		start := time.Now()
		j := joinLoopback(b, "n9", id, addr)
		select {
		case <-j.rp.Synced():
		case <-time.After(120 * time.Second):
			b.Fatalf("not synced: %+v", j.rp.Stats())
		}
		d := time.Since(start)
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		if j.st.Len() != n {
			b.Fatalf("synced with %d of %d bindings", j.st.Len(), n)
		}
		b.ReportMetric(d.Seconds(), "sync-s")
		b.ReportMetric(float64(n)/d.Seconds(), "bindings/s")
		st := j.rp.Stats()
		b.ReportMetric(float64(st.ChunksReceived), "chunks")
		b.ReportMetric(float64(st.PullsAborted), "aborted-pulls")
		b.ReportMetric(float64(st.VerifyRounds), "verify-rounds")
		b.ReportMetric(float64(ms1.NumGC-ms0.NumGC), "gcs")
		b.ReportMetric(float64(ms1.PauseTotalNs-ms0.PauseTotalNs)/1e6, "gc-pause-ms")
	}
}

const (
	envDonorAddr = "USRLOC_BENCH_DONOR_ADDR"
	envDonorN    = "USRLOC_BENCH_DONOR_N"
)

// donorID is the donor process's node ID.
const donorID = "n1"

// runDonor serves n realistic bindings as node donorID on addr; it says
// "ready" on stdout once they are in, and stops when stdin closes.
func runDonor(addr string, n int) error {
	_, st, stopNode, err := childNode(donorID, addr, nil)
	if err != nil {
		return err
	}
	defer stopNode()
	for i := range n {
		if _, err := st.Register(realistic(i), nil); err != nil {
			return err
		}
	}
	runtime.GC() // the fill's garbage is not the join's to pay
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// startDonorProcess starts a donor process and waits until it holds its
// bindings; it is stopped when the benchmark ends.
func startDonorProcess(b *testing.B, addr string, n int) {
	b.Helper()
	startChild(b, "donor", envDonorAddr+"="+addr, envDonorN+"="+strconv.Itoa(n)).waitLine(b, "ready")
}
