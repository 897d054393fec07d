package dialog

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// benchIDs pre-builds dialog IDs so the benchmarks time the tracker, not
// strconv.
func benchIDs(n int) []ID {
	ids := make([]ID, n)
	for i := range ids {
		ids[i] = ID{CallID: "b" + strconv.Itoa(i) + "@bench.example", FromTag: "ft" + strconv.Itoa(i)}
	}
	return ids
}

// BenchmarkLifecycle: one full dialog lifecycle on one node (INVITE →
// profile → 2xx → ACK → BYE, with the terminate hook).
func BenchmarkLifecycle(b *testing.B) {
	tr, err := New(Config{OnTerminate: func(TerminateEvent) {}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	ids := benchIDs(1 << 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := ids[i&(len(ids)-1)]
		tr.Begin(id)
		tr.AddProfile(id, "calls-per-tenant", "acme")
		tr.Answer(id, "tt")
		tr.Ack(id)
		tr.Bye(id, PartyCaller)
	}
	b.StopTimer()
	if s := tr.Stats(); s.Underflows != 0 || s.Live != 0 {
		b.Fatalf("stats %+v", s)
	}
}

// BenchmarkLifecycleReplicated is Lifecycle on n1 of three nodes on
// loopback TCP: every step is also encoded and broadcast to two peers,
// which merge it (the peers share the machine's two cores).
func BenchmarkLifecycleReplicated(b *testing.B) {
	nodes := startLoopbackCluster(b, 3)
	a := nodes[0]
	ids := benchIDs(1 << 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := ids[i&(len(ids)-1)]
		a.Begin(id)
		a.AddProfile(id, "calls-per-tenant", "acme")
		a.Answer(id, "tt")
		a.Ack(id)
		a.Bye(id, PartyCaller)
	}
	b.StopTimer()
	for _, d := range nodes {
		if s := d.Stats(); s.Underflows != 0 {
			b.Fatalf("stats %+v", s)
		}
	}
}

// BenchmarkBaselineMapLifecycle is the floor the tracker is compared
// with: the same five steps as map operations under one mutex.
func BenchmarkBaselineMapLifecycle(b *testing.B) {
	type entry struct {
		state   State
		toTag   string
		profile ProfileKey
	}
	var mu sync.Mutex
	m := map[ID]*entry{}
	counts := map[ProfileKey]int{}
	ids := benchIDs(1 << 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := ids[i&(len(ids)-1)]
		mu.Lock()
		m[id] = &entry{state: Early}
		mu.Unlock()
		mu.Lock()
		m[id].profile = ProfileKey{"calls-per-tenant", "acme"}
		counts[m[id].profile]++
		mu.Unlock()
		mu.Lock()
		m[id].state, m[id].toTag = Confirmed, "tt"
		mu.Unlock()
		mu.Lock()
		m[id].state = Confirmed
		mu.Unlock()
		mu.Lock()
		counts[m[id].profile]--
		delete(m, id)
		mu.Unlock()
	}
}

// BenchmarkCount: a cluster-wide profile count read.
func BenchmarkCount(b *testing.B) {
	tr, _ := New(Config{})
	defer tr.Close()
	for _, id := range benchIDs(1000) {
		tr.Begin(id)
		tr.AddProfile(id, "calls-per-tenant", "acme")
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for range b.N {
		n += tr.Count("calls-per-tenant", "acme")
	}
	if n != 1000*b.N {
		b.Fatal("wrong count")
	}
}

// BenchmarkCounter: the same read through a Counter handle.
func BenchmarkCounter(b *testing.B) {
	tr, _ := New(Config{})
	defer tr.Close()
	for _, id := range benchIDs(1000) {
		tr.Begin(id)
		tr.AddProfile(id, "calls-per-tenant", "acme")
	}
	c := tr.Counter("calls-per-tenant", "acme")
	b.ResetTimer()
	n := 0
	for range b.N {
		n += c.Count()
	}
	if n != 1000*b.N {
		b.Fatal("wrong count")
	}
}

// BenchmarkBaselineRWMapRead is Count's floor: a read-locked map lookup.
func BenchmarkBaselineRWMapRead(b *testing.B) {
	var mu sync.RWMutex
	m := map[ProfileKey]int{{"calls-per-tenant", "acme"}: 1000}
	b.ResetTimer()
	n := 0
	for range b.N {
		mu.RLock()
		n += m[ProfileKey{"calls-per-tenant", "acme"}]
		mu.RUnlock()
	}
	if n != 1000*b.N {
		b.Fatal("wrong count")
	}
}

// BenchmarkHeapPerDialog reports the heap held per confirmed dialog in a
// profile, with a 40-byte Call-ID and two 10-byte tags (B/dialog).
func BenchmarkHeapPerDialog(b *testing.B) {
	const n = 100_000
	for range b.N {
		b.StopTimer()
		ids := make([]ID, n)
		for i := range ids {
			ids[i] = ID{CallID: strconv.Itoa(1e9+i) + "-4f1c2a9e-77b0-4c1d-9e3a@h", FromTag: strconv.Itoa(1e9 + i)}
		}
		tags := make([]string, n)
		for i := range tags {
			tags[i] = strconv.Itoa(2e9 + i)
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr, _ := New(Config{})
		b.StartTimer()
		for i, id := range ids {
			tr.Begin(id)
			tr.AddProfile(id, "calls-per-tenant", "acme")
			tr.Answer(id, tags[i])
			tr.Ack(id)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/dialog")
		if tr.Count("calls-per-tenant", "acme") != n {
			b.Fatal("wrong count")
		}
		runtime.KeepAlive(ids)
		runtime.KeepAlive(tags)
		tr.Close()
	}
}

// BenchmarkClusterConvergence: three nodes on loopback TCP; one op is a
// call added to a profile on n1, then ended, each time waiting until n2
// and n3 count the change. ns/op is two propagation delays; the README
// compares it with the 200 ms heartbeat interval.
func BenchmarkClusterConvergence(b *testing.B) {
	nodes := startLoopbackCluster(b, 3)
	a := nodes[0]
	ids := benchIDs(1 << 16)
	wait := func(want int) {
		for _, d := range nodes[1:] {
			for d.Count("p", "") != want {
				time.Sleep(20 * time.Microsecond) // spinning would starve the transport on 2 cores
			}
		}
	}
	b.ResetTimer()
	for i := range b.N {
		id := ids[i&(len(ids)-1)]
		a.Begin(id)
		a.AddProfile(id, "p", "")
		wait(1)
		a.Bye(id, PartyCaller)
		wait(0)
	}
	b.StopTimer()
	var worst time.Duration
	for i := range 200 {
		id := ID{"lat" + strconv.Itoa(i), "t"}
		start := time.Now()
		a.Begin(id)
		a.AddProfile(id, "p", "")
		wait(1)
		worst = max(worst, time.Since(start))
		a.Bye(id, PartyCaller)
		wait(0)
	}
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs/change")
}

// startLoopbackCluster starts n trackers over cluster.TCP on 127.0.0.1,
// each with ownership.Single (every node owns its own node resource).
func startLoopbackCluster(b *testing.B, n int) []*Tracker {
	b.Helper()
	secret := []byte("dialog-bench-secret-0123456789")
	tcps := make([]*cluster.TCP, n)
	for i := range n {
		t, err := cluster.NewTCP(context.Background(), cluster.Config{ID: cluster.NodeID("n" + strconv.Itoa(i+1)),
			Listen: "127.0.0.1:0", Secret: secret, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		tcps[i] = t
		b.Cleanup(func() { t.Close() })
	}
	for i, t := range tcps {
		for j, o := range tcps {
			if i != j {
				t.AddPeer(cluster.Peer{ID: o.LocalID(), Addr: o.Addr()})
			}
		}
	}
	var out []*Tracker
	for _, t := range tcps {
		own := ownership.NewSingle(t.LocalID())
		// A short tombstone life keeps a long run's memory steady.
		d, err := New(Config{Transport: t, Ownership: own, TombstoneTTL: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close(); own.Close() })
		out = append(out, d)
	}
	for _, d := range out {
		select {
		case <-d.Synced():
		case <-time.After(10 * time.Second):
			b.Fatal("not synced")
		}
	}
	return out
}
