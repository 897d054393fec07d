package cdr

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr/internal/crashfs"
)

// testSeed returns CDR_SEED when set (to replay a failure) or a fresh seed,
// and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CDR_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CDR_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with CDR_SEED=%d)", seed, seed)
	return seed
}

// crashRun posts from several goroutines until a simulated power cut at a
// random moment, restarts on what the disk kept, delivers everything, and
// returns the IDs whose Post returned nil but never arrived.
func crashRun(t *testing.T, rng *rand.Rand, noSync, collectorUp bool) (acked int, lost []string) {
	fs := crashfs.New()
	s := newSink(t, ReceiverConfig{}, false)
	if !collectorUp {
		s.mode.Store(modeDown)
	}
	cfg := fastConfig("/spool", s.srv.URL)
	cfg.Format, cfg.BatchSize = FormatNDJSON, 16
	cfg.SegmentBytes, cfg.SpoolMaxBytes = 4<<10, 64<<20
	cfg.NoSync, cfg.fs = noSync, fs
	p := newPoster(t, cfg)

	var mu sync.Mutex
	var ok []string
	var next atomic.Int64
	crashAt := 20 + rng.IntN(400)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := fmt.Sprintf("r%05d", next.Add(1))
				if _, err := p.Post(context.Background(), Record{ID: id, Fields: map[string]any{"id": id}}); err != nil {
					return // the crash
				}
				mu.Lock()
				ok = append(ok, id)
				n := len(ok)
				mu.Unlock()
				if n == crashAt {
					fs.Crash()
				}
			}
		}()
	}
	wg.Wait()
	_ = p.Close()

	s.mode.Store(modeUp)
	cfg.fs = fs.Restart(rng)
	p2 := newPoster(t, cfg)
	flush(t, p2, 20*time.Second)
	for _, id := range ok {
		if _, found := s.record(id); !found {
			lost = append(lost, id)
		}
	}
	return len(ok), lost
}

// TestCrashKeepsEveryPostedRecord cuts the power (not just the process:
// unsynced bytes and directory entries are gone, torn tails garbled) at
// random moments; every Post that returned nil must still be delivered.
func TestCrashKeepsEveryPostedRecord(t *testing.T) {
	checkNoLeaks(t)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < crashRuns; i++ {
		acked, lost := crashRun(t, rng, false, i%2 == 0)
		if len(lost) > 0 {
			t.Fatalf("run %d: %d of %d acknowledged records lost, e.g. %v", i, len(lost), acked, lost[:min(5, len(lost))])
		}
	}
}

// TestCrashWithoutSyncLoses is the control: with fsync off the same crash
// must lose acknowledged records, or the test above proves nothing.
func TestCrashWithoutSyncLoses(t *testing.T) {
	checkNoLeaks(t)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	total := 0
	for i := 0; i < 3; i++ {
		_, lost := crashRun(t, rng, true, false)
		total += len(lost)
	}
	if total == 0 {
		t.Fatal("the crash-simulating FS kept unsynced data; durability tests are void")
	}
}
