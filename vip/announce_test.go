package vip_test

import (
	"context"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/vip"
	"github.com/sipha/sipha/vip/viptest"
)

func startSingle(t *testing.T, log *viptest.Log, cfg vip.Config) *vip.Manager {
	t.Helper()
	own := ownership.NewSingle("n1")
	t.Cleanup(func() { own.Close() })
	cfg.Hook = log.Hook("n1", cfg.Hook)
	m, err := vip.New(context.Background(), own, log.Backend("n1"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Frames of a burst are spaced by Interval; Refresh repeats the burst; a
// negative SecondBurst turns the second burst off.
func TestAnnounceSpacingAndRefresh(t *testing.T) {
	clustertest.CheckLeaks(t)
	log := viptest.NewLog(nil)
	startSingle(t, log, vip.Config{VIPs: []vip.VIP{vipOn(vipA)},
		Announce: vip.Announce{Count: 3, Interval: 20 * time.Millisecond, SecondBurst: -1, Refresh: 200 * time.Millisecond}})
	ownershiptest.WaitFor(t, 5*time.Second, "a refresh burst", func() bool {
		return len(log.Filter("n1", viptest.OpAnnounce)) >= 6
	})
	ann := log.Filter("n1", viptest.OpAnnounce)
	for i := 1; i < 3; i++ {
		if gap := ann[i].At.Sub(ann[i-1].At); gap < 20*time.Millisecond {
			t.Fatalf("frames %d and %d of the burst %v apart, want ≥ 20ms", i-1, i, gap)
		}
	}
	// Refresh is scheduled from the start of the first burst, which is a
	// moment before its first frame was recorded.
	if gap := ann[3].At.Sub(ann[0].At); gap < 190*time.Millisecond {
		t.Fatalf("refresh burst %v after the first, want about 200ms", gap)
	}
	// The hook ran after the first frame, not after the whole burst.
	ops := log.Filter("n1", viptest.OpAnnounce, viptest.OpHookUp)
	if ops[0].Kind != viptest.OpAnnounce || ops[1].Kind != viptest.OpHookUp {
		t.Fatalf("want announce then hook-up, got %v", kinds(ops[:2]))
	}
}

func TestAnnounceOff(t *testing.T) {
	log := viptest.NewLog(nil)
	startSingle(t, log, vip.Config{VIPs: []vip.VIP{vipOn(vipA)}, Announce: vip.Announce{Count: -1}})
	ownershiptest.WaitFor(t, 5*time.Second, "hook-up", func() bool { return len(log.Filter("n1", viptest.OpHookUp)) == 1 })
	if n := len(log.Filter("n1", viptest.OpAnnounce)); n != 0 {
		t.Fatalf("%d announcements with Count -1", n)
	}
}

// A failing add is retried; the hook hears "up" only once the address is
// really up, and failing announcements are counted, not fatal.
func TestAddRetriedAfterFailure(t *testing.T) {
	log := viptest.NewLog(nil)
	be := log.Backend("n1")
	be.Fail(viptest.OpAdd, viptest.ErrInjected)
	be.Fail(viptest.OpAnnounce, viptest.ErrInjected)
	m := startSingle(t, log, vip.Config{VIPs: []vip.VIP{vipOn(vipA)}, Lifetime: time.Second, RenewEvery: 100 * time.Millisecond})
	ownershiptest.WaitFor(t, 5*time.Second, "three failed adds", func() bool { return len(log.Filter("n1", viptest.OpAdd)) >= 3 })
	if n := len(log.Filter("n1", viptest.OpHookUp)); n != 0 {
		t.Fatalf("hook-up after failed adds only")
	}
	be.Fail(viptest.OpAdd, nil)
	ownershiptest.WaitFor(t, 5*time.Second, "hook-up", func() bool { return len(log.Filter("n1", viptest.OpHookUp)) == 1 })
	if !be.Has(vipA) {
		t.Fatal("address not up")
	}
	st := m.Stats()
	if st.Errors < 3+5 || st.Announcements != 0 || st.Up != 1 {
		t.Fatalf("stats %+v: want ≥ 3 add and 5 announce errors, no announcements, 1 up", st)
	}
}
