package clustertest

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// leakWait is how long CheckLeaks gives goroutines to end after a test.
const leakWait = 5 * time.Second

// CheckLeaks snapshots the running goroutines now and, when the test ends
// (t.Cleanup), waits up to a few seconds for every goroutine started since to
// end. It fails the test with the stacks of those left.
//
// Call it first in a test, so its cleanup runs after every other cleanup
// (cleanups run last-registered first) and so sees the test's Close calls
// done. Goroutines of the testing package (subtests) are ignored. It cannot
// tell a leak from the goroutines of a test running in parallel, so do not
// use it in tests that call t.Parallel.
func CheckLeaks(t LeakT) {
	t.Helper()
	checkLeaks(t, leakWait)
}

// LeakT is the part of testing.TB that CheckLeaks uses. It is an interface
// of its own so that harnesses taking their own test interface (package
// siphatest's TB, which a demo binary implements) can run the check too.
type LeakT interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
}

func checkLeaks(t LeakT, wait time.Duration) {
	before := make(map[uint64]bool)
	for _, g := range goroutines() {
		before[g.id] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(wait)
		var left []goroutine
		for sleep := time.Millisecond; ; sleep = min(2*sleep, 100*time.Millisecond) {
			left = left[:0]
			for _, g := range goroutines() {
				if !before[g.id] && !ignoredGoroutine(g.stack) {
					left = append(left, g)
				}
			}
			if len(left) == 0 || !time.Now().Before(deadline) {
				break
			}
			time.Sleep(sleep)
		}
		if len(left) == 0 {
			return
		}
		var b strings.Builder
		for _, g := range left {
			b.WriteString("\n\n")
			b.WriteString(g.stack)
		}
		t.Errorf("clustertest: %d goroutine(s) leaked (still running %v after the test):%s", len(left), wait, b.String())
	})
}

type goroutine struct {
	id    uint64
	stack string
}

// goroutines parses runtime.Stack(all) into one entry per goroutine.
func goroutines() []goroutine {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var gs []goroutine
	for _, s := range bytes.Split(buf, []byte("\n\n")) {
		// Each block starts "goroutine 42 [state]:".
		rest, ok := bytes.CutPrefix(s, []byte("goroutine "))
		if !ok {
			continue
		}
		idStr, _, ok := bytes.Cut(rest, []byte(" "))
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(string(idStr), 10, 64)
		if err != nil {
			continue
		}
		gs = append(gs, goroutine{id: id, stack: string(s)})
	}
	return gs
}

// ignoredGoroutine reports goroutines of the testing framework and the
// runtime, which come and go on their own.
func ignoredGoroutine(stack string) bool {
	for _, s := range []string{
		"testing.tRunner(",       // subtests
		"testing.(*T).Run(",      // a test waiting for its subtests
		"testing.runTests",       // the test main
		"testing.(*M).",          // the test main
		"testing.runFuzzing(",    // fuzzing workers
		"runtime.runFinalizers(", // finalizers, while running one
		"runtime.runCleanups(",   // runtime.AddCleanup, while running one
		"os/signal.signal_recv(", // signal.Notify's loop
		"runtime.ensureSigM(",    // signal masks
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
