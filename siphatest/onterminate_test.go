package siphatest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/siphatest"
)

// TestOnTerminate attaches a per-node CDR hook the way a proxy's CDR sink
// is attached: it posts through the node's own poster, which runs before
// the tracker starts and after it stops, and every incarnation of the node
// gets its own hook and its own stop.
func TestOnTerminate(t *testing.T) {
	var mu sync.Mutex
	attached, stopped := 0, 0
	c := siphatest.NewCluster(t, 1, siphatest.Options{
		Disable: siphatest.BlockVIPs | siphatest.BlockPartitions | siphatest.BlockLimiter,
		OnTerminate: func(n *siphatest.Node) (func(dialog.TerminateEvent), func()) {
			if n.CDR == nil {
				t.Errorf("%s: no CDR poster when the hook is attached", n.ID)
			}
			mu.Lock()
			attached++
			mu.Unlock()
			poster := n.CDR
			var posts sync.WaitGroup
			hook := func(ev dialog.TerminateEvent) {
				// The hook must not block: it posts on a goroutine that stop
				// waits for, before the harness closes the poster.
				posts.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					poster.Post(ctx, cdr.Record{ID: ev.ID.String(), Fields: map[string]any{"reason": ev.Reason.String()}})
				})
			}
			return hook, func() { posts.Wait(); mu.Lock(); stopped++; mu.Unlock() }
		},
	})
	counts := func() (int, int) { mu.Lock(); defer mu.Unlock(); return attached, stopped }
	end := func(call string) {
		t.Helper()
		n := c.Node("n1")
		id := dialog.ID{CallID: call, FromTag: "a"}
		if err := n.Dialogs.Begin(id); err != nil {
			t.Fatal(err)
		}
		if err := n.Dialogs.Bye(id, dialog.PartyCaller); err != nil {
			t.Fatal(err)
		}
		c.Eventually("the CDR of "+call, func() bool { return c.Collector().Has(id.String()) })
	}
	end("first")
	if a, s := counts(); a != 1 || s != 0 {
		t.Fatalf("after start: attached %d, stopped %d; want 1, 0", a, s)
	}
	c.Kill("n1")
	if a, s := counts(); a != 1 || s != 1 {
		t.Fatalf("after Kill: attached %d, stopped %d; want 1, 1", a, s)
	}
	c.Restart("n1")
	end("second")
	if a, s := counts(); a != 2 || s != 1 {
		t.Fatalf("after Restart: attached %d, stopped %d; want 2, 1", a, s)
	}
}

func TestOnTerminateNeedsDialogs(t *testing.T) {
	o := siphatest.Options{Disable: siphatest.BlockDialogs,
		OnTerminate: func(*siphatest.Node) (func(dialog.TerminateEvent), func()) { return nil, nil }}
	if err := o.Validate(); err == nil {
		t.Fatal("OnTerminate without the dialog block validated")
	}
}
