package siphatest_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

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
	bad := map[string]struct {
		n    int
		opts siphatest.Options
	}{
		"no nodes":       {0, siphatest.Options{}},
		"all spares":     {3, siphatest.Options{Spares: 3}},
		"unknown block":  {3, siphatest.Options{Disable: 1 << 7}},
		"negative rate":  {3, siphatest.Options{Limits: map[string]ratelimit.Limit{"a": {Rate: -1}}}},
		"empty pipe":     {3, siphatest.Options{Limits: map[string]ratelimit.Limit{"": {Rate: 1}}}},
		"duplicate VIP":  {3, siphatest.Options{VIPs: []netip.Prefix{siphatest.DefaultVIP, siphatest.DefaultVIP}}},
		"invalid VIP":    {3, siphatest.Options{VIPs: []netip.Prefix{{}}}},
		"negative limit": {3, siphatest.Options{Timeout: -1}},
	}
	for name, c := range bad {
		if err := c.opts.Validate(c.n); !errors.Is(err, siphatest.ErrOptions) {
			t.Errorf("%s: Validate = %v, want ErrOptions", name, err)
		}
	}
	if err := (siphatest.Options{Spares: 1}).Validate(3); err != nil {
		t.Fatalf("zero options with a spare: %v", err)
	}
	// NewCluster refuses them through the test, never by a panic of its own.
	tb := siphatest.NewStandalone("bad", nil)
	func() {
		defer func() { recover() }()
		siphatest.NewCluster(tb, 0, siphatest.Options{})
	}()
	if err := tb.Close(); !strings.Contains(err.Error(), "invalid options") {
		t.Fatalf("NewCluster with 0 nodes: %v", err)
	}
}
