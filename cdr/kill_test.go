package cdr

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The kill test re-executes this test binary as the poster process; with
// childEnv set, TestMain runs the child instead of the tests.
const childEnv = "SIPHA_CDR_KILL_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(killChild())
	}
	os.Exit(m.Run())
}

// killChild posts records START..COUNT-1 with 32 goroutines, printing
// "ok N" after each Post that returned nil, then "posted", then waits for
// delivery and prints "done".
func killChild() int {
	env := func(k string) int { v, _ := strconv.Atoi(os.Getenv(k)); return v }
	cfg := Config{SpoolDir: os.Getenv("CDR_SPOOL"), Format: FormatNDJSON, BatchSize: 100,
		Timeout: time.Second, BackoffBase: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		BreakerCooldown: 50 * time.Millisecond, BreakerMaxCooldown: 200 * time.Millisecond,
		Seed: uint64(env("CDR_SEED"))}
	for _, u := range strings.Split(os.Getenv("CDR_URLS"), ",") {
		cfg.Endpoints = append(cfg.Endpoints, Endpoint{URL: u})
	}
	p, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var out sync.Mutex
	say := func(s string) {
		out.Lock()
		defer out.Unlock()
		_, _ = os.Stdout.WriteString(s + "\n")
	}
	next := int64(env("CDR_START") - 1)
	count := int64(env("CDR_COUNT"))
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= count {
					return
				}
				id := fmt.Sprintf("rec-%05d", i)
				if _, err := p.Post(context.Background(), Record{ID: id, Fields: map[string]any{"n": i}}); err != nil {
					fmt.Fprintln(os.Stderr, "post:", err)
					os.Exit(3)
				}
				say("ok " + strconv.FormatInt(i, 10))
			}
		}()
	}
	wg.Wait()
	say("posted")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "flush:", err)
		return 4
	}
	_ = p.Close()
	say("done")
	return 0
}

// TestKillRestartDeliversEverything runs the poster as a real process,
// SIGKILLs it at random points at least five times and restarts it on the
// same spool, with the primary collector down throughout and the secondary
// flapping (down, refusing connections, or storing records and then
// answering 500 so they are sent again). Every record must arrive, each ID
// handed to the collector exactly once.
func TestKillRestartDeliversEverything(t *testing.T) {
	checkNoLeaks(t)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	const count = killRecords
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, ReceiverConfig{}, false)
	urls := deadURL(t) + "," + s.srv.URL

	stopFlap := make(chan struct{})
	flapDone := make(chan struct{})
	flapRng := rand.New(rand.NewPCG(seed, 4))
	go func() {
		defer close(flapDone)
		for {
			m := int32(modeUp)
			switch r := flapRng.IntN(100); {
			case r < 15:
				m = modeDown
			case r < 30:
				m = modeAckLost
			case r < 40:
				m = modeRefuse
			}
			s.mode.Store(m)
			select {
			case <-stopFlap:
				s.mode.Store(modeUp)
				return
			case <-time.After(time.Duration(10+flapRng.IntN(70)) * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopFlap); <-flapDone }()

	dir := t.TempDir()
	acked := make([]bool, count)
	start := 0
	kills := 0
	for run := 0; ; run++ {
		if run > killTimes+5 {
			t.Fatalf("no clean finish after %d runs", run)
		}
		// killTimes kills at a random number of acknowledged posts (delivery runs
		// alongside), then one at a random moment of the final drain (which
		// may come too late, when the child has finished), then a clean run.
		kill := kills < killTimes || run == killTimes
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "CDR_SPOOL="+dir, "CDR_URLS="+urls,
			fmt.Sprintf("CDR_START=%d", start), fmt.Sprintf("CDR_COUNT=%d", count), fmt.Sprintf("CDR_SEED=%d", seed+uint64(run)))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a random number of acknowledged posts, or, once all
		// are posted, after a random delay during delivery.
		killAfter := 1 + rng.IntN(max(1, (count-start)/4))
		if kills >= killTimes {
			killAfter = -1 // only once everything is posted
		}
		killDelay := time.Duration(rng.IntN(100)) * time.Millisecond
		var timer *time.Timer
		sc := bufio.NewScanner(stdout)
		seen, done := 0, false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ok "):
				i, _ := strconv.Atoi(line[3:])
				acked[i] = true
				seen++
				if kill && seen == killAfter {
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}
			case line == "posted" && kill && timer == nil:
				timer = time.AfterFunc(killDelay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
			case line == "done":
				done = true
			}
		}
		if timer != nil {
			timer.Stop()
		}
		err = cmd.Wait()
		if done && err == nil && kills >= killTimes {
			break
		}
		if done && err == nil {
			t.Fatalf("run %d finished before it was killed", run)
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: child failed: %v\n%s", run, err, stderr.String())
		}
		kills++
		for start < count && acked[start] {
			start++
		}
		t.Logf("run %d killed after %d acks; restarting at %d", run, seen, start)
	}
	if kills < killTimes {
		t.Fatalf("only %d kills", kills)
	}
	for i := 0; i < count; i++ {
		id := fmt.Sprintf("rec-%05d", i)
		rec, ok := s.record(id)
		if !ok {
			t.Fatalf("%s never arrived", id)
		}
		if rec.Fields["n"] != json.Number(strconv.Itoa(i)) {
			t.Fatalf("%s arrived with fields %v", id, rec.Fields)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) != count {
		t.Fatalf("collector holds %d IDs, want %d: a duplicate came with a new ID", len(s.got), count)
	}
	for id, n := range s.n {
		if n != 1 {
			t.Fatalf("%s handed to the collector %d times", id, n)
		}
	}
	st := s.rcv.Stats()
	t.Logf("%d kills; receiver: %d requests, %d records accepted, %d duplicates dropped", kills, st.Requests, st.Accepted, st.Duplicates)
}
