package ratelimit_test

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/ratelimit"
	"golang.org/x/time/rate"
)

// The baseline is golang.org/x/time/rate, the field's standard Go limiter
// (node-local, one limiter, no lookup by name). Allow is measured on an
// existing pipe of a table of 1000 and admits every call (a huge rate), so
// both sides run the same admitting path.

func benchLimiter(b *testing.B) *ratelimit.Limiter {
	l, err := ratelimit.New(ratelimit.Config{Default: ratelimit.Limit{Rate: 1e12, Burst: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	for i := 0; i < 1000; i++ {
		l.Allow("tenant-" + strconv.Itoa(i))
	}
	return l
}

func benchAllow(b *testing.B) {
	l := benchLimiter(b)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("tenant-42")
	}
}

func benchXRate(b *testing.B) {
	r := rate.NewLimiter(rate.Limit(1e12), 1<<30)
	b.ReportAllocs()
	for b.Loop() {
		r.Allow()
	}
}

// benchAllowParallel: each goroutine its own pipe (tenants spread over
// nodes' cores).
func benchAllowParallel(b *testing.B) {
	l := benchLimiter(b)
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		name := "tenant-" + strconv.Itoa(int(next.Add(1)))
		for pb.Next() {
			l.Allow(name)
		}
	})
}

// benchAllowParallelSame: every goroutine on one pipe (one hot tenant).
func benchAllowParallelSame(b *testing.B) {
	l := benchLimiter(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("tenant-42")
		}
	})
}

func benchXRateParallel(b *testing.B) {
	r := rate.NewLimiter(rate.Limit(1e12), 1<<30)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Allow()
		}
	})
}

func BenchmarkAllow(b *testing.B)                 { benchAllow(b) }
func BenchmarkXRateAllow(b *testing.B)            { benchXRate(b) }
func BenchmarkAllowParallel(b *testing.B)         { benchAllowParallel(b) }
func BenchmarkAllowParallelSamePipe(b *testing.B) { benchAllowParallelSame(b) }
func BenchmarkXRateAllowParallel(b *testing.B)    { benchXRateParallel(b) }

// The two benchmarks below interleave what they compare in chunks inside
// one loop, so both sides run under the same machine load (a shared CI
// machine's load swings more between consecutive benchmarks than the
// difference being measured), and report the ratio directly.

const chunk = 4096

// BenchmarkAllowVsXRate: serial Allow on a pipe beside x/time/rate's Allow.
func BenchmarkAllowVsXRate(b *testing.B) {
	l := benchLimiter(b)
	r := rate.NewLimiter(rate.Limit(1e12), 1<<30)
	var ours, theirs, clock time.Duration
	n := 0
	var sink time.Time
	for b.Loop() {
		// The clock read alone: both limiters read it once per call.
		tc := time.Now()
		for i := 0; i < chunk; i++ {
			sink = time.Now()
		}
		clock += time.Since(tc)
		t0 := time.Now()
		for i := 0; i < chunk; i++ {
			l.Allow("tenant-42")
		}
		t1 := time.Now()
		for i := 0; i < chunk; i++ {
			r.Allow()
		}
		ours += t1.Sub(t0)
		theirs += time.Since(t1)
		n += chunk
	}
	b.ReportMetric(float64(ours)/float64(n), "allow-ns/op")
	b.ReportMetric(float64(theirs)/float64(n), "xrate-ns/op")
	b.ReportMetric(float64(ours)/float64(theirs), "allow/xrate")
	b.ReportMetric(float64(clock)/float64(n), "time.Now-ns/op")
	_ = sink
}

// BenchmarkParallelVsSerial: the wall time per call when GOMAXPROCS
// goroutines call Allow at once (each on its own pipe, and all on one
// pipe), against one goroutine alone, and the same for x/time/rate.
func BenchmarkParallelVsSerial(b *testing.B) {
	l := benchLimiter(b)
	r := rate.NewLimiter(rate.Limit(1e12), 1<<30)
	procs := runtime.GOMAXPROCS(0)
	timed := func(parallel bool, call func(g int)) time.Duration {
		t0 := time.Now()
		if !parallel {
			for i := 0; i < chunk; i++ {
				call(0)
			}
			return time.Since(t0)
		}
		var wg sync.WaitGroup
		for g := 0; g < procs; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < chunk/procs; i++ {
					call(g)
				}
			}()
		}
		wg.Wait()
		return time.Since(t0)
	}
	names := make([]string, procs)
	for g := range names {
		names[g] = "tenant-" + strconv.Itoa(g)
	}
	own := func(g int) { l.Allow(names[g]) }
	same := func(int) { l.Allow("tenant-42") }
	xr := func(int) { r.Allow() }
	var serial, par, parSame, xSerial, xPar time.Duration
	for b.Loop() {
		serial += timed(false, own)
		par += timed(true, own)
		parSame += timed(true, same)
		xSerial += timed(false, xr)
		xPar += timed(true, xr)
	}
	b.ReportMetric(float64(par)/float64(serial), "parallel/serial")
	b.ReportMetric(float64(parSame)/float64(serial), "samepipe-parallel/serial")
	b.ReportMetric(float64(xPar)/float64(xSerial), "xrate-parallel/serial")
}
