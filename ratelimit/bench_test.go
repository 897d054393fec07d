package ratelimit_test

import (
	"strconv"
	"sync/atomic"
	"testing"

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

// BenchmarkRatios runs each benchmark above back to back in one process
// and reports the ratios the README quotes: Allow against x/time/rate,
// and the parallel cost per call against the serial one.
func BenchmarkRatios(b *testing.B) {
	ns := func(f func(*testing.B)) float64 {
		r := testing.Benchmark(f)
		return float64(r.T.Nanoseconds()) / float64(r.N)
	}
	for b.Loop() {
		allow, xr := ns(benchAllow), ns(benchXRate)
		par, same, xpar := ns(benchAllowParallel), ns(benchAllowParallelSame), ns(benchXRateParallel)
		b.ReportMetric(allow, "allow-ns")
		b.ReportMetric(xr, "xrate-ns")
		b.ReportMetric(allow/xr, "allow/xrate")
		b.ReportMetric(par/allow, "parallel/serial")
		b.ReportMetric(same/allow, "samepipe-parallel/serial")
		b.ReportMetric(xpar/xr, "xrate-parallel/serial")
	}
}
