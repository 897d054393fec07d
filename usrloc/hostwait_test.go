package usrloc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// hostWait is how long this process's threads have waited so far for a
// core while runnable (the second field of Linux's per-thread schedstat),
// summed over its live threads; ok is false where that is not available.
// Benchmarks on a shared host report its growth per second of a run: it
// is latency that the host, not the code, adds to every goroutine hop.
func hostWait() (d time.Duration, ok bool) {
	files, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil || len(files) == 0 {
		return 0, false
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended meanwhile
		}
		fs := strings.Fields(string(b))
		if len(fs) < 2 {
			return 0, false
		}
		ns, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil {
			return 0, false
		}
		d += time.Duration(ns)
	}
	return d, true
}
