package ownership

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
)

func TestSingle(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx := context.Background()
	s := NewSingle("n1")
	if _, ok := s.Held("vip/a"); ok {
		t.Fatal("held an unknown resource")
	}
	if err := s.Ensure(ctx, Spec{Name: "vip/a"}); err != nil {
		t.Fatal(err)
	}
	events, stop := WatchChan(s, "vip/")
	if e := <-events; e.Kind != Moved || e.Resource != "vip/a" || e.Claim != (Claim{"n1", 1}) {
		t.Fatalf("first event %+v", e)
	}
	if e := <-events; e.Kind != Acquired || e.Claim.Epoch != 1 {
		t.Fatalf("second event %+v", e)
	}
	if err := s.Ensure(ctx, Spec{Name: "tenant/x"}); err != nil { // other prefix: not delivered
		t.Fatal(err)
	}
	if err := s.Ensure(ctx, Spec{Name: "vip/b"}); err != nil {
		t.Fatal(err)
	}
	if e := <-events; e.Resource != "vip/b" || e.Claim.Epoch != 3 {
		t.Fatalf("want vip/b at epoch 3, got %+v", e)
	}
	<-events
	if err := s.Ensure(ctx, Spec{Name: "vip/b"}); err != nil { // no change
		t.Fatal(err)
	}
	if e, ok := s.Held("vip/b"); !ok || e != 3 {
		t.Fatalf("Held(vip/b) = %d, %v", e, ok)
	}
	if err := s.Remove(ctx, "vip/a"); err != nil {
		t.Fatal(err)
	}
	if e := <-events; e.Kind != Lost || !e.Removed || e.Claim.Epoch != 1 {
		t.Fatalf("want Lost of vip/a, got %+v", e)
	}
	if e := <-events; e.Kind != Moved || !e.Removed {
		t.Fatalf("want Moved (removed) of vip/a, got %+v", e)
	}
	if err := s.Remove(ctx, "vip/a"); err != nil { // idempotent, as raftowner's
		t.Fatalf("second Remove = %v", err)
	}
	select {
	case e := <-events:
		t.Fatalf("second Remove published %+v", e)
	default:
	}
	if err := s.Ensure(ctx, Spec{Name: "nope"}); !errors.Is(err, ErrBadName) {
		t.Fatalf("Ensure(bad) = %v", err)
	}
	stop()
	stop()
	s.Close()
	s.Close()
	if _, ok := s.Held("vip/b"); ok {
		t.Fatal("held after Close")
	}
	if err := s.Ensure(ctx, Spec{Name: "vip/c"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ensure after Close = %v", err)
	}
	waitGoroutines(t, base)
}

func TestWatchSlowWatcherDoesNotBlockOthers(t *testing.T) {
	s := NewSingle("n1")
	defer s.Close()
	block := make(chan struct{})
	stopSlow := s.Watch("", func(Event) { <-block })
	got := make(chan Event, 100)
	stopFast := s.Watch("", func(e Event) { got <- e })
	for i := 0; i < 10; i++ {
		if err := s.Ensure(context.Background(), Spec{Name: fmt.Sprintf("vip/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("fast watcher got only %d events while the slow one blocks", i)
		}
	}
	close(block)
	stopSlow()
	stopFast()
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ExampleSingle() {
	s := NewSingle("n1")
	defer s.Close()
	ctx := context.Background()
	_ = s.Ensure(ctx, Spec{Name: VIPResource("198.51.100.100"), Candidates: []cluster.NodeID{"n1"}})
	epoch, held := s.Held("vip/198.51.100.100")
	fmt.Println(held, epoch)
	// Output: true 1
}

func ExampleWatchChan() {
	s := NewSingle("n1")
	defer s.Close()
	events, stop := WatchChan(s, "tenant/")
	defer stop()
	_ = s.Ensure(context.Background(), Spec{Name: TenantResource("acme")})
	for i := 0; i < 2; i++ {
		e := <-events
		fmt.Println(e.Kind, e.Resource, e.Claim.Node, e.Claim.Epoch)
	}
	// Output:
	// moved tenant/acme n1 1
	// acquired tenant/acme n1 1
}
