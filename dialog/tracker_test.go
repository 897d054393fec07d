package dialog

import (
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
)

func TestLifecycleByeFromCallee(t *testing.T) {
	clustertest.CheckLeaks(t)
	var h hooks
	cfg := Config{}
	h.install(&cfg)
	tr := newTracker(t, cfg)
	c := call{"c1", "ft1", "tt1"}
	id, err := tr.Invite(c.invite(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.AddProfile(id, "calls-per-tenant", "acme"); err != nil {
		t.Fatal(err)
	}
	if n := tr.Count("calls-per-tenant", "acme"); n != 1 {
		t.Fatalf("count %d, want 1", n)
	}
	// Forking: two early dialogs, the second fork answers.
	tr.Response(c.res(t, 180, "fork-a"))
	tr.Response(c.res(t, 183, "tt1"))
	if _, ok := tr.Response(c.res(t, 200, "tt1")); !ok {
		t.Fatal("200 not matched")
	}
	tr.Response(c.res(t, 200, "fork-a")) // a late second answer changes nothing
	if in, _ := tr.Get(id); in.State != Confirmed || in.ToTag != "tt1" {
		t.Fatalf("after 200: %+v", in)
	}
	if _, ok := tr.Request(c.req(t, "ACK", false, 1)); !ok {
		t.Fatal("ACK not matched")
	}
	// A BYE on the losing fork does not end the call.
	lost := call{"c1", "ft1", "fork-a"}
	if _, ok := tr.Request(lost.req(t, "BYE", true, 1)); ok {
		t.Fatal("BYE on the losing fork matched")
	}
	if _, ok := tr.Request(c.req(t, "BYE", true, 1)); !ok {
		t.Fatal("BYE from the callee not matched")
	}
	if n := tr.Count("calls-per-tenant", "acme"); n != 0 {
		t.Fatalf("count %d after BYE", n)
	}
	terms := h.terminated()
	if len(terms) != 1 {
		t.Fatalf("%d terminate events", len(terms))
	}
	ev := terms[0]
	if ev.EventID != "c1;ft1" || ev.Reason != ReasonBye || ev.HungUp != PartyCallee || ev.ToTag != "tt1" ||
		ev.Answered.IsZero() || ev.Ended.Before(ev.Answered) || ev.Profiles[0] != (ProfileKey{"calls-per-tenant", "acme"}) {
		t.Fatalf("terminate event %+v", ev)
	}
	h.mu.Lock()
	states := h.states
	h.mu.Unlock()
	want := []string{"c1:state(0)->early", "c1:early->confirmed", "c1:confirmed->terminated"}
	if len(states) != len(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
	if s := tr.Stats(); s.Underflows != 0 || s.Live != 0 || s.HooksFired != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCancelAndReject(t *testing.T) {
	clustertest.CheckLeaks(t)
	var h hooks
	cfg := Config{}
	h.install(&cfg)
	tr := newTracker(t, cfg)
	c1, c2 := call{"c1", "a", "b"}, call{"c2", "a", "b"}
	id1, _ := tr.Invite(c1.invite(t))
	id2, _ := tr.Invite(c2.invite(t))
	tr.AddProfile(id1, "all", "")
	tr.AddProfile(id2, "all", "")
	if _, ok := tr.Request(c1.req(t, "CANCEL", false, 1)); !ok {
		t.Fatal("CANCEL not matched")
	}
	if in, _ := tr.Get(id1); in.State != Early {
		t.Fatalf("CANCEL alone ended the dialog: %v", in.State)
	}
	tr.Response(c1.res(t, 487, "b"))
	tr.Response(c2.res(t, 486, "b"))
	got := map[string]TerminateEvent{}
	for _, ev := range h.terminated() {
		got[ev.ID.CallID] = ev
	}
	if ev := got["c1"]; ev.Reason != ReasonCancel {
		t.Fatalf("c1: %+v", ev)
	}
	if ev := got["c2"]; ev.Reason != ReasonRejected || ev.Code != 486 || ev.Duration() != 0 {
		t.Fatalf("c2: %+v", ev)
	}
	if n := tr.Count("all", ""); n != 0 {
		t.Fatalf("count %d", n)
	}
	// One node keeps no tombstones: an ended dialog is gone.
	if err := tr.AddProfile(id1, "all", ""); !errors.Is(err, ErrUnknown) {
		t.Fatalf("AddProfile on an ended dialog: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h hooks
		cfg := Config{EarlyTimeout: time.Minute, AckTimeout: 32 * time.Second, MaxDuration: time.Hour}
		h.install(&cfg)
		tr := newTracker(t, cfg)
		early, noAck, long, short := call{"early", "a", "b"}, call{"noack", "a", "b"}, call{"long", "a", "b"}, call{"short", "a", "b"}
		for _, c := range []call{early, noAck, long, short} {
			if _, err := tr.Invite(c.invite(t)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []call{noAck, long, short} {
			tr.Response(c.res(t, 200, "b"))
		}
		for _, c := range []call{long, short} {
			tr.Request(c.req(t, "ACK", false, 1))
		}
		tr.SetMaxDuration(ID{"short", "a"}, 10*time.Minute)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if n := len(h.terminated()); n != 0 {
			t.Fatalf("%d ended after 20s", n)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		want := map[string]Reason{"early": ReasonEarlyTimeout, "noack": ReasonNoAck, "long": ReasonMaxDuration, "short": ReasonMaxDuration}
		got := h.terminated()
		if len(got) != len(want) {
			t.Fatalf("%d terminate events, want %d", len(got), len(want))
		}
		for _, ev := range got {
			if ev.Reason != want[ev.ID.CallID] {
				t.Errorf("%s ended by %v, want %v", ev.ID.CallID, ev.Reason, want[ev.ID.CallID])
			}
			if ev.ID.CallID == "short" && ev.Duration() != 10*time.Minute {
				t.Errorf("short lasted %v", ev.Duration())
			}
			if ev.ID.CallID == "long" && ev.Duration() != time.Hour {
				t.Errorf("long lasted %v", ev.Duration())
			}
		}
		if s := tr.Stats(); s.Timeouts != 4 || s.Live != 0 {
			t.Fatalf("stats %+v", s)
		}
		tr.Close()
	})
}

// blinkOwner is an ownership manager whose lease can lapse without its
// watch noticing: Held says no, and no Lost or Acquired event follows (a
// lapse shorter than the watch's poll, on a loaded machine).
type blinkOwner struct {
	ownership.Manager
	lapsed atomic.Bool
}

func (b *blinkOwner) Held(res string) (ownership.Epoch, bool) {
	if b.lapsed.Load() {
		return 0, false
	}
	return b.Manager.Held(res)
}

// TestLeaseBlink: a maximum duration that comes due, and a BYE that ends a
// call, while the owner's lease has lapsed unseen. Nothing fires during the
// lapse (the owner may not act); both fire once it ends. Before the retry,
// the timer and the hook were dropped until the next takeover (CI saw
// TestKillOwnerMidCall's timeout never fire).
func TestLeaseBlink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h hooks
		// A tombstone (kept by every tracker with a transport) is what the
		// BYE's hook is retried from.
		cfg := Config{MaxDuration: time.Minute, TombstoneTTL: time.Minute}
		h.install(&cfg)
		own := &blinkOwner{Manager: ownership.NewSingle("n1")}
		cfg.Ownership = own
		tr := newTracker(t, cfg)
		time.Sleep(time.Second) // the tracker ensures and acquires node/n1
		synctest.Wait()
		if _, ok := own.Held(ownership.NodeResource("n1")); !ok {
			t.Fatal("node/n1 not held")
		}
		long, bye := call{"long", "a", "b"}, call{"bye", "a", "b"}
		for _, c := range []call{long, bye} {
			tr.Invite(c.invite(t))
			tr.Response(c.res(t, 200, "b"))
			tr.Request(c.req(t, "ACK", false, 1))
		}
		time.Sleep(59 * time.Second)
		own.lapsed.Store(true)
		tr.Request(bye.req(t, "BYE", false, 2))
		time.Sleep(5 * time.Second) // long's maximum comes due
		synctest.Wait()
		if got := h.terminated(); len(got) != 0 {
			t.Fatalf("%d terminate events while the lease had lapsed: %+v", len(got), got)
		}
		if s := tr.Stats(); s.Live != 1 {
			t.Fatalf("live %d during the lapse, want 1 (long, not ended without the lease)", s.Live)
		}
		own.lapsed.Store(false)
		time.Sleep(time.Second)
		synctest.Wait()
		want := map[string]Reason{"long": ReasonMaxDuration, "bye": ReasonBye}
		got := h.terminated()
		if len(got) != len(want) {
			t.Fatalf("%d terminate events after the lapse, want %d: %+v", len(got), len(want), got)
		}
		for _, ev := range got {
			if ev.Reason != want[ev.ID.CallID] {
				t.Errorf("%s ended by %v, want %v", ev.ID.CallID, ev.Reason, want[ev.ID.CallID])
			}
		}
		tr.Close()
	})
}
