package siphatest_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/usrloc"

	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/siphatest"
)

//go:noinline
func leakyWorker(stop <-chan struct{}) { <-stop }

// The cleanup's leak check fails a test that leaves a goroutine running,
// and passes one that does not. A Standalone stands in for the test, so the
// failure is recorded instead of failing this test.
func TestLeakCheckCatchesLeak(t *testing.T) {
	clean := siphatest.NewStandalone("clean", nil)
	siphatest.NewCluster(clean, 1, siphatest.Options{Disable: siphatest.BlockVIPs})
	if err := clean.Close(); err != nil {
		t.Fatalf("a cluster that stopped everything failed the leak check: %v", err)
	}

	leaky := siphatest.NewStandalone("leaky", nil)
	siphatest.NewCluster(leaky, 1, siphatest.Options{Disable: siphatest.AllBlocks})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { leakyWorker(stop); close(done) }()
	err := leaky.Close()
	close(stop)
	<-done
	if err == nil {
		t.Fatal("a goroutine left running passed the leak check")
	}
	if msg := err.Error(); !strings.Contains(msg, "1 goroutine(s) leaked") || !strings.Contains(msg, "leakyWorker") {
		t.Fatalf("the failure does not name the leaked goroutine:\n%s", msg)
	}
}

// Network faults need the in-memory network: with Loopback they fail the
// test rather than pretend.
func TestLoopbackRefusesNetworkFaults(t *testing.T) {
	tb := siphatest.NewStandalone("loopback", nil)
	defer tb.Close()
	c := siphatest.NewCluster(tb, 1, siphatest.Options{Loopback: true, Disable: siphatest.AllBlocks})
	func() {
		defer func() {
			var f *siphatest.Failure
			if r := recover(); r == nil || !errors.As(r.(error), &f) || !strings.Contains(f.Msg, "in-memory network") {
				t.Fatalf("Isolate with Loopback: recovered %v", r)
			}
		}()
		c.Isolate("n1")
	}()
}

func TestOptionsValidate(t *testing.T) {
	bad := map[string]siphatest.Options{
		"negative spares":   {Spares: -1},
		"unknown block":     {Disable: 1 << 7},
		"negative rate":     {Limits: map[string]ratelimit.Limit{"a": {Rate: -1}}},
		"empty pipe":        {Limits: map[string]ratelimit.Limit{"": {Rate: 1}}},
		"duplicate VIP":     {VIPs: []netip.Prefix{siphatest.DefaultVIP, siphatest.DefaultVIP}},
		"invalid VIP":       {VIPs: []netip.Prefix{{}}},
		"negative timeout":  {Timeout: -1},
		"orphan keepalive":  {Disable: siphatest.BlockLocations, Keepalive: func(context.Context, cluster.NodeID, usrloc.Binding) error { return nil }},
		"negative interval": {KeepaliveInterval: -time.Second},
	}
	for name, o := range bad {
		if err := o.Validate(); !errors.Is(err, siphatest.ErrOptions) {
			t.Errorf("%s: Validate = %v, want ErrOptions", name, err)
		}
	}
	if err := (siphatest.Options{Spares: 1}).Validate(); err != nil {
		t.Fatalf("zero options with a spare: %v", err)
	}
	// NewCluster refuses bad options and sizes through the test, never by
	// a panic of its own.
	for _, tc := range []struct {
		n    int
		opts siphatest.Options
	}{{0, siphatest.Options{}}, {65, siphatest.Options{}}, {3, siphatest.Options{Spares: 3}}, {3, bad["unknown block"]}} {
		tb := siphatest.NewStandalone("bad", nil)
		func() {
			defer func() { recover() }()
			siphatest.NewCluster(tb, tc.n, tc.opts)
		}()
		if err := tb.Close(); err == nil || !strings.Contains(err.Error(), "invalid options") {
			t.Errorf("NewCluster(%d, %+v): %v", tc.n, tc.opts, err)
		}
	}
}
