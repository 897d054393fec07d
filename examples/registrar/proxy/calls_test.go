package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/usrloc"
)

// TestNoCallTracking serves one stack through two proxies, one tracking
// calls and one with NoCallTracking: a call through the first is a dialog
// in the tracker, one through the second is not; a burst over the CPS
// limit meets 503 at the first and none at the second.
func TestNoCallTracking(t *testing.T) {
	clustertest.CheckLeaks(t)
	st, err := Start(context.Background(), StackConfig{ID: "solo", ClusterAddr: "127.0.0.1:0", Secret: clustertest.Secret,
		DataDir: t.TempDir(), CPS: 2, Replicator: usrloc.ReplicatorConfig{BootstrapWait: 100 * time.Millisecond},
		Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tracked, err := New(st.Blocks(), Config{Listen: "127.0.0.1:0", Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tracked.Close()
	bare, err := New(st.Blocks(), Config{Listen: "127.0.0.1:0", NoCallTracking: true, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	waitFor(t, 20*time.Second, "the node healthy", func() bool { return tracked.Health() == "" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	bob := newUA(t, "bob")
	answered := bob.answer()
	bob.register(ctx, t, bare.Addr())
	calls := newUA(t, "alice").caller()
	for _, tc := range []struct {
		p       *Proxy
		dialogs int
	}{{tracked, 1}, {bare, 0}} {
		s, err := call(ctx, calls, bob.aor(), &node{p: tc.p})
		if err != nil {
			t.Fatalf("call through the proxy (NoCallTracking %v): %v", tc.p.cfg.NoCallTracking, err)
		}
		<-answered
		time.Sleep(50 * time.Millisecond) // the ACK passes the proxy
		if n := st.Dialogs.Len(); n != tc.dialogs {
			t.Errorf("NoCallTracking %v: %d dialogs in the tracker during the call, want %d", tc.p.cfg.NoCallTracking, n, tc.dialogs)
		}
		if err := s.Bye(ctx); err != nil {
			t.Fatalf("BYE: %v", err)
		}
		s.Close()
		waitFor(t, 5*time.Second, "no dialog left", func() bool { return st.Dialogs.Len() == 0 })
	}

	// 20 INVITEs to nobody at once: over the 2 CPS limit at the tracking
	// proxy (the call above spent its tokens), all looked up (404) at the
	// other.
	for _, tc := range []struct {
		p       *Proxy
		limited bool
	}{{tracked, true}, {bare, false}} {
		got := map[string]int{}
		for i := range 20 {
			line, _, _ := strings.Cut(rawSIP(t, tc.p.Addr(), invite("nobody", 1000+i, "")), " [")
			got[line]++
		}
		limited := got["SIP/2.0 503 Service Unavailable"] > 0
		if limited != tc.limited || !limited && got["SIP/2.0 404 Not Found"] != 20 {
			t.Errorf("NoCallTracking %v: answers %v", tc.p.cfg.NoCallTracking, got)
		}
	}
}
