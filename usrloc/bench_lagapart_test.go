package usrloc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// BenchmarkReplicationLagApart is BenchmarkReplicationLag with each of the
// three nodes in a process of its own, as deployed: its own heap, its own
// collector and scheduler (the processes still share this host's cores).
// Each writes a third of the updates; the write time travels in the
// binding's User-Agent and the lag is read off the host's wall clock,
// which the processes share.
func BenchmarkReplicationLagApart(b *testing.B) {
	const rate = 20000
	const dur = 2 * time.Second
	for range b.N {
		addrs := clustertest.LoopbackAddrs(b, 3)
		var procs []*child
		for i := range addrs {
			procs = append(procs, startLagProcess(b, i, addrs, rate/3, dur))
		}
		for _, p := range procs {
			p.waitLine(b, "ready")
		}
		for _, p := range procs {
			fmt.Fprintln(p.stdin, "go")
		}
		var lags []time.Duration
		var schedP99 time.Duration
		var gcs, updates float64
		var wait, elapsed time.Duration
		for _, p := range procs {
			r := p.result(b)
			lags = append(lags, r.lags...)
			schedP99 = max(schedP99, r.schedP99)
			gcs += r.gcs
			updates += r.updates
			wait += r.wait
			elapsed = max(elapsed, r.elapsed)
		}
		if want := int(2 * updates); len(lags) < want {
			b.Fatalf("%d of %d remote updates seen", len(lags), want)
		}
		slices.Sort(lags)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(updates/elapsed.Seconds(), "updates/s")
		b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
		b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
		b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
		b.ReportMetric(ms(schedP99), "sched-p99-ms")
		b.ReportMetric(gcs, "gcs")
		b.ReportMetric(float64(wait.Milliseconds())/elapsed.Seconds(), "host-wait-ms/s")
	}
}

func startLagProcess(b *testing.B, i int, addrs []string, rate int, dur time.Duration) *child {
	return startChild(b, "lag", envLagNode+"="+strconv.Itoa(i), envLagAddrs+"="+strings.Join(addrs, ","),
		envLagRate+"="+strconv.Itoa(rate), envLagDur+"="+dur.String())
}

// lagResult is what a node process reports: "lag NS" lines, then
// "sched-p99 NS", "gcs N", "updates N", "wait NS", "elapsed NS", "end".
type lagResult struct {
	lags                    []time.Duration
	schedP99, wait, elapsed time.Duration
	gcs, updates            float64
}

func (p *child) result(b *testing.B) lagResult {
	b.Helper()
	var r lagResult
	for {
		line, err := p.out.ReadString('\n')
		if err != nil {
			b.Fatalf("node process: %v", err)
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "lag":
			r.lags = append(r.lags, time.Duration(n))
		case "sched-p99":
			r.schedP99 = time.Duration(n)
		case "gcs":
			r.gcs = float64(n)
		case "updates":
			r.updates = float64(n)
		case "wait":
			r.wait = time.Duration(n)
		case "elapsed":
			r.elapsed = time.Duration(n)
		case "end":
			return r
		default:
			b.Fatalf("node process said %q", line)
		}
	}
}

// Variables that make the test binary a node process of
// BenchmarkReplicationLagApart instead of running tests.
const (
	envLagNode  = "USRLOC_BENCH_LAG_NODE"
	envLagAddrs = "USRLOC_BENCH_LAG_ADDRS"
	envLagRate  = "USRLOC_BENCH_LAG_RATE"
	envLagDur   = "USRLOC_BENCH_LAG_DUR"
)

// runLagNode is one node of BenchmarkReplicationLagApart: up with its
// peers, it says "ready", writes its share of updates after "go", waits
// for the others' and reports (see lagResult); it stops when stdin closes.
func runLagNode() error {
	i, _ := strconv.Atoi(os.Getenv(envLagNode))
	addrs := strings.Split(os.Getenv(envLagAddrs), ",")
	rate, _ := strconv.Atoi(os.Getenv(envLagRate))
	dur, err := time.ParseDuration(os.Getenv(envLagDur))
	if err != nil {
		return err
	}
	ids := nodeIDs(len(addrs))
	var peers []cluster.Peer
	for j := range ids {
		if j != i {
			peers = append(peers, cluster.Peer{ID: ids[j], Addr: addrs[j]})
		}
	}
	tr, st, stopNode, err := childNode(ids[i], addrs[i], peers)
	if err != nil {
		return err
	}
	defer stopNode()

	var mu sync.Mutex
	var lags []time.Duration
	stop := st.Watch("", func(e Event) {
		at, err := strconv.ParseInt(strings.TrimPrefix(e.Binding.UserAgent, "t"), 10, 64)
		if !e.Remote || e.Kind == Removed || err != nil {
			return
		}
		d := time.Since(time.Unix(0, at))
		mu.Lock()
		lags = append(lags, d)
		mu.Unlock()
	})
	defer stop()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		up := 0
		for _, m := range tr.Members() {
			if m.State == cluster.StateUp {
				up++
			}
		}
		if up == len(peers) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d: peers not up", i)
		}
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	wait0, _ := hostWait()
	total := int(int64(rate) * int64(dur) / int64(time.Second))
	elapsed, late, err := paced(rate, total, func(k int) error {
		c := ContactUpdate{URI: fmt.Sprintf("sip:lag%d@192.0.2.1:5060", k), Expires: time.Hour,
			UserAgent: "t" + strconv.FormatInt(time.Now().UnixNano(), 10), Socket: "udp:127.0.0.1:5060"}
		_, err := st.Register(Registration{AOR: fmt.Sprintf("sip:lag%d-%d@example.com", i, k), CallID: "c", CSeq: 1, Contacts: []ContactUpdate{c}}, nil)
		return err
	})
	if err != nil {
		return err
	}
	want := total * len(peers) // every peer writes as many
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		got := len(lags)
		mu.Unlock()
		if got >= want {
			break
		}
	}
	wait1, _ := hostWait()
	runtime.ReadMemStats(&ms1)
	slices.Sort(late)
	w := bufio.NewWriter(os.Stdout)
	mu.Lock()
	for _, d := range lags {
		fmt.Fprintln(w, "lag", int64(d))
	}
	mu.Unlock()
	fmt.Fprintln(w, "sched-p99", int64(late[len(late)*99/100]))
	fmt.Fprintln(w, "gcs", ms1.NumGC-ms0.NumGC)
	fmt.Fprintln(w, "updates", total)
	fmt.Fprintln(w, "wait", int64(wait1-wait0))
	fmt.Fprintln(w, "elapsed", int64(elapsed))
	fmt.Fprintln(w, "end")
	w.Flush()
	io.Copy(io.Discard, os.Stdin)
	return nil
}
