package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingTB is a testing.TB that records failures and cleanups instead of
// acting on them, to test a test helper. Methods it does not override go to
// the embedded real T (logging only).
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// finish runs the cleanups last-registered first, as testing does.
func (r *recordingTB) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

//go:noinline
func leakyWorker(stop <-chan struct{}) { <-stop }

func TestCheckLeaksCatchesLeak(t *testing.T) {
	fake := &recordingTB{TB: t}
	checkLeaks(fake, 50*time.Millisecond)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { leakyWorker(stop); close(done) }()
	fake.finish()
	close(stop)
	<-done
	if len(fake.errors) != 1 {
		t.Fatalf("CheckLeaks reported %d failures, want 1: %q", len(fake.errors), fake.errors)
	}
	if msg := fake.errors[0]; !strings.Contains(msg, "1 goroutine(s) leaked") || !strings.Contains(msg, "leakyWorker") {
		t.Fatalf("failure does not name the leaked goroutine:\n%s", msg)
	}
}

func TestCheckLeaksPassesWhenGoroutinesEnd(t *testing.T) {
	fake := &recordingTB{TB: t}
	checkLeaks(fake, 5*time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { leakyWorker(stop) })
	// The goroutine ends while the check waits: no failure. Subtests'
	// goroutines are the framework's and are not counted either.
	time.AfterFunc(20*time.Millisecond, func() { close(stop) })
	t.Run("sub", func(t *testing.T) {})
	fake.finish()
	wg.Wait()
	if len(fake.errors) != 0 {
		t.Fatalf("CheckLeaks failed a clean test: %q", fake.errors)
	}
}

// TestNetworkCloseUnblocksEverything blocks an Accept, a Read, a Write and a
// Dial across a partition, closes the Network, and checks that every call
// returns and no goroutine is left.
func TestNetworkCloseUnblocksEverything(t *testing.T) {
	CheckLeaks(t)
	n, err := New(Config{Seed: 30, BufferSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := n.Host("b").Listen(ctx, "b:1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.Host("a").Dial(ctx, "b:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	n.Partition([]string{"a"}, []string{"c"})
	errs := make(chan error, 4)
	go func() { _, err := l.Accept(); errs <- err }()
	go func() { _, err := c.Read(make([]byte, 1)); errs <- err }()
	go func() { _, err := c.Write(make([]byte, 100)); errs <- err }()
	go func() { _, err := n.Host("a").Dial(ctx, "c:1"); errs <- err }()
	time.Sleep(10 * time.Millisecond)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for range 4 {
		if err := <-errs; !errors.Is(err, net.ErrClosed) && !errors.Is(err, ErrNetworkClosed) {
			t.Errorf("blocked call after Network.Close: %v", err)
		}
	}
	if _, err := n.Host("a").Listen(ctx, "a:1"); !errors.Is(err, ErrNetworkClosed) {
		t.Errorf("listen after Close: %v, want ErrNetworkClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{BufferSize: -1}, {RetransmitTimeout: -time.Second}} {
		if _, err := New(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}

// TestNoGoroutinePerConn opens a hundred connections, with data blocked in
// both directions, and checks that the network started no goroutine for them.
func TestNoGoroutinePerConn(t *testing.T) {
	CheckLeaks(t)
	n := newNet(t, Config{Seed: 33})
	before := runtime.NumGoroutine()
	for i := range 100 {
		c, s := connect(t, n, "a", "b", 100+i)
		mustWrite(t, c, "x")
		mustWrite(t, s, "y")
	}
	n.SetDelay(time.Hour)
	n.Partition([]string{"a"}, []string{"b"})
	// A little slack for unrelated runtime work; one goroutine per conn
	// would add at least 100.
	if after := runtime.NumGoroutine(); after > before+10 {
		t.Fatalf("goroutines grew from %d to %d with 100 conns", before, after)
	}
}
