package usrloc

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkReplicationLag: 3 nodes over loopback TCP, 20k binding updates
// per second spread over the three, for 2 s per iteration. Lag is from the
// write on its node to the Watch event on each other node.
//
// The baseline in the same run is the sender's own wake-up delay: how much
// longer than asked its 200 µs sleeps took (sched-p99-ms). On a host
// shared with other jobs that delay is the scheduler's, and every hop of a
// replicated change (writer, transport writer, transport reader, watcher)
// can pay it.
func BenchmarkReplicationLag(b *testing.B) {
	const rate = 20000
	const dur = 2 * time.Second
	for range b.N {
		nodes, _ := loopbackNodesB(b, 3)
		total := int(rate * dur / time.Second)
		sent := make([]atomic.Int64, total)
		var mu sync.Mutex
		var lags []time.Duration
		for _, n := range nodes {
			stop := n.st.Watch("", func(e Event) {
				if !e.Remote || e.Kind == Removed {
					return
				}
				i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(e.Binding.AOR, "sip:lag"), "@example.com"))
				if err != nil || i >= total {
					return
				}
				at := sent[i].Load()
				if at == 0 {
					return
				}
				d := time.Since(time.Unix(0, at))
				mu.Lock()
				lags = append(lags, d)
				mu.Unlock()
			})
			defer stop()
		}
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		wait0, waitOK := hostWait()
		elapsed, late, err := paced(rate, total, func(i int) error {
			sent[i].Store(time.Now().UnixNano())
			c := ContactUpdate{URI: fmt.Sprintf("sip:lag%d@192.0.2.1:5060", i), Expires: time.Hour, UserAgent: "bench", Socket: "udp:127.0.0.1:5060"}
			_, err := nodes[i%3].st.Register(Registration{AOR: fmt.Sprintf("sip:lag%d@example.com", i), CallID: "c", CSeq: 1, Contacts: []ContactUpdate{c}}, nil)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		wait1, _ := hostWait()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := len(lags)
			mu.Unlock()
			if got >= 2*total || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		slices.Sort(lags)
		if len(lags) < 2*total {
			b.Fatalf("%d of %d remote updates seen", len(lags), 2*total)
		}
		b.ReportMetric(float64(total)/elapsed.Seconds(), "updates/s")
		b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-ms")
		slices.Sort(late)
		b.ReportMetric(float64(late[len(late)*99/100].Microseconds())/1000, "sched-p99-ms")
		b.ReportMetric(float64(ms1.NumGC-ms0.NumGC), "gcs")
		if waitOK {
			// Summed over the process's threads, so it can exceed
			// 1000 ms/s.
			b.ReportMetric(float64((wait1-wait0).Milliseconds())/elapsed.Seconds(), "host-wait-ms/s")
		}
		mu.Unlock()
	}
}

// paced calls write(i) for i in [0, total), rate times a second, in the
// bursts that are due after each 200 µs sleep. It returns how long that
// took and how much longer than asked each sleep took: the writer's own
// wake-up delay, the host's share of any lag.
func paced(rate, total int, write func(i int) error) (elapsed time.Duration, late []time.Duration, err error) {
	start := time.Now()
	for done := 0; done < total; {
		due := int(time.Since(start) * time.Duration(rate) / time.Second)
		for ; done < due && done < total; done++ {
			if err := write(done); err != nil {
				return 0, nil, err
			}
		}
		t0 := time.Now()
		time.Sleep(200 * time.Microsecond)
		late = append(late, time.Since(t0)-200*time.Microsecond)
	}
	return time.Since(start), late, nil
}
