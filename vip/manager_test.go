package vip_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/vip"
	"github.com/sipha/sipha/vip/viptest"
)

// raftowner.Node is the HealthSetter the health checks need.
var _ vip.HealthSetter = (*raftowner.Node)(nil)

var vipA = netip.MustParsePrefix("198.51.100.100/24")

// pair is two SIP nodes and an arbiter on ownershiptest's network, each SIP
// node with a vip.Manager over a shared recording fake.
type pair struct {
	c    *ownershiptest.Cluster
	log  *viptest.Log
	mgrs map[cluster.NodeID]*vip.Manager
}

func pairConfig(vips ...vip.VIP) func(cluster.NodeID) vip.Config {
	return func(cluster.NodeID) vip.Config {
		return vip.Config{VIPs: vips, Lifetime: time.Second, RenewEvery: 100 * time.Millisecond,
			Announce: vip.Announce{SecondBurst: 300 * time.Millisecond}}
	}
}

// vipOn is a VIP preferring the first candidate. Preferred with a short
// hold-down rather than sticky: under load the leader may place a new
// resource on the second candidate when the first renewed late, and the
// tests want to start from the first.
func vipOn(p netip.Prefix, cands ...cluster.NodeID) vip.VIP {
	return vip.VIP{Prefix: p, Interface: "eth0", Candidates: cands, Policy: ownership.Preferred, HoldDown: 300 * time.Millisecond}
}

// waitHolder waits until exactly node has p up in the fake.
func (p *pair) waitHolder(t *testing.T, pfx netip.Prefix, node string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(p.log.Holders(pfx), []string{node}) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s alone holding %s; holders %v; cluster:\n%s", node, pfx, p.log.Holders(pfx), p.c.Dump())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSIPLeader waits until a SIP node leads Raft, so every test injects
// its fault from the same kind of steady state (see README: the arbiter's
// hand-off once stalled on a node just cut off).
func (p *pair) waitSIPLeader(t *testing.T) {
	t.Helper()
	ownershiptest.WaitFor(t, 10*time.Second, "a SIP node leading", func() bool {
		l := p.c.Leader()
		return l == "n1" || l == "n2"
	})
}

func (p *pair) noConflicts(t *testing.T) {
	t.Helper()
	if c := p.log.Conflicts(); len(c) > 0 {
		t.Fatalf("two holders at once: %v\nops: %v", c, p.log.Ops())
	}
}

func kinds(ops []viptest.Op) []string {
	var out []string
	for _, o := range ops {
		out = append(out, o.Kind)
	}
	return out
}

func TestAcquireRemovesStaleAddsRenewsAnnounces(t *testing.T) {
	clustertest.CheckLeaks(t)
	log := viptest.NewLog(nil)
	// A copy left behind by an earlier run of n2, which is not the primary.
	log.Backend("n2").Put(vipA, time.Hour)
	p := newPairWithLog(t, log, pairConfig(vipOn(vipA, "n1", "n2")))
	p.waitHolder(t, vipA, "n1")
	// The second burst comes 300 ms after the first; renewals every 100 ms.
	ownershiptest.WaitFor(t, 5*time.Second, "second burst and renewals", func() bool {
		return len(p.log.Filter("n1", viptest.OpAnnounce)) == 10 && len(p.log.Filter("n1", viptest.OpAdd)) >= 4
	})
	n1 := kinds(p.log.Filter("n1"))
	want := []string{viptest.OpRemove, viptest.OpAdd, viptest.OpAnnounce, viptest.OpAnnounce, viptest.OpAnnounce,
		viptest.OpAnnounce, viptest.OpAnnounce, viptest.OpHookUp}
	if !slices.Equal(n1[:len(want)], want) {
		t.Fatalf("n1 ops start %v, want %v", n1, want)
	}
	for _, o := range p.log.Filter("n1", viptest.OpAdd) {
		if o.Lifetime != time.Second {
			t.Fatalf("add with lifetime %v, want 1s", o.Lifetime)
		}
	}
	if n2 := p.log.Filter("n2"); len(n2) == 0 || n2[0].Kind != viptest.OpRemove {
		t.Fatalf("n2 should first have removed its stale copy: %v", n2)
	}
	st := p.mgrs["n1"].Stats()
	if st.Up != 1 || st.Announcements != 10 || st.Adds != 1 || st.Renewals < 3 || !st.Healthy {
		t.Fatalf("n1 stats %+v", st)
	}
	p.noConflicts(t)
}

func newPairWithLog(t *testing.T, log *viptest.Log, cfg func(cluster.NodeID) vip.Config) *pair {
	t.Helper()
	c := ownershiptest.New(t, ownershiptest.Config{Nodes: []cluster.NodeID{"n1", "n2", "arb"},
		Roles: map[cluster.NodeID]raftowner.Role{"arb": raftowner.RoleArbiter}})
	p := &pair{c: c, log: log, mgrs: map[cluster.NodeID]*vip.Manager{}}
	p.start(t, cfg, "n1", "n2")
	return p
}

func (p *pair) start(t *testing.T, cfg func(cluster.NodeID) vip.Config, ids ...cluster.NodeID) {
	t.Helper()
	for _, id := range ids {
		vc := cfg(id)
		vc.Hook = p.log.Hook(string(id), vc.Hook)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		m, err := vip.New(ctx, p.c.Node(id), p.log.Backend(string(id)), vc)
		cancel()
		if err != nil {
			t.Fatalf("vip.New %s: %v", id, err)
		}
		p.mgrs[id] = m
		t.Cleanup(func() { m.Close() })
	}
}

// An owner cut off from the cluster takes its address down when its lease
// lapses, before the standby puts it up, and stops renewing it.
func TestIsolatedOwnerRemovesBeforeStandbyAdds(t *testing.T) {
	p := newPairWithLog(t, viptest.NewLog(nil), pairConfig(vipOn(vipA, "n1", "n2")))
	p.waitHolder(t, vipA, "n1")
	p.waitSIPLeader(t)
	p.c.Isolate("n1")
	p.waitHolder(t, vipA, "n2")
	p.noConflicts(t)
	ops := p.log.Ops()
	var n1Remove, n1HookDown, n2Add int
	for _, o := range ops {
		switch {
		case o.Node == "n1" && o.Kind == viptest.OpRemove && o.Seq > 1:
			n1Remove = o.Seq
		case o.Node == "n1" && o.Kind == viptest.OpHookDown:
			n1HookDown = o.Seq
		case o.Node == "n2" && o.Kind == viptest.OpAdd && n2Add == 0:
			n2Add = o.Seq
		case o.Node == "n1" && o.Kind == viptest.OpAdd && n1Remove != 0:
			t.Fatalf("n1 renewed after removing: %v", o)
		}
	}
	if n1Remove == 0 || n1HookDown < n1Remove || n2Add < n1Remove {
		t.Fatalf("want n1 remove < n1 hook-down and n1 remove < n2 add; got %d %d %d\n%v", n1Remove, n1HookDown, n2Add, ops)
	}
	time.Sleep(300 * time.Millisecond) // several renew periods
	for _, o := range p.log.Filter("n1", viptest.OpAdd) {
		if o.Seq > n1Remove {
			t.Fatalf("isolated n1 added again: %v", o)
		}
	}
}

// Two VIPs with opposite candidate orders live on different nodes, and each
// one moves on its own.
func TestActiveActive(t *testing.T) {
	vipB := netip.MustParsePrefix("198.51.100.101/24")
	p := newPairWithLog(t, viptest.NewLog(nil), pairConfig(vipOn(vipA, "n1", "n2"), vipOn(vipB, "n2", "n1")))
	p.waitHolder(t, vipA, "n1")
	p.waitHolder(t, vipB, "n2")
	p.waitSIPLeader(t)
	p.c.Isolate("n2")
	p.waitHolder(t, vipB, "n1")
	p.waitHolder(t, vipA, "n1")
	p.noConflicts(t)
}

// A failing check makes the owner give its VIP up (after Fall failures);
// once healthy again (after Rise and the hold-down) the preferred node gets
// it back; maintenance hands it away until switched off.
func TestHealthCheckAndMaintenance(t *testing.T) {
	var failing atomic.Bool
	var runs atomic.Int64
	check := vip.Check{Name: "sip-options", Interval: 20 * time.Millisecond, Rise: 3, Fall: 2,
		Run: func(ctx context.Context) error {
			runs.Add(1)
			if failing.Load() {
				return errors.New("no answer to OPTIONS")
			}
			return nil
		}}
	cfg := func(id cluster.NodeID) vip.Config {
		c := pairConfig(vipOn(vipA, "n1", "n2"))(id)
		if id == "n1" {
			c.Checks = []vip.Check{check}
		}
		return c
	}
	p := newPairWithLog(t, viptest.NewLog(nil), cfg)
	p.waitHolder(t, vipA, "n1")
	failing.Store(true)
	p.waitHolder(t, vipA, "n2")
	st := p.mgrs["n1"].Stats()
	if st.Healthy || !slices.Equal(st.FailingChecks, []string{"sip-options"}) || st.Up != 0 {
		t.Fatalf("n1 stats while failing: %+v", st)
	}
	failing.Store(false)
	ownershiptest.WaitFor(t, 5*time.Second, "n1 healthy again", p.mgrs["n1"].Healthy)
	// Healthy for the hold-down, the preferred n1 gets it back.
	p.waitHolder(t, vipA, "n1")
	// Maintenance hands it away and keeps n1 out until switched off.
	if err := p.mgrs["n1"].SetMaintenance(true); err != nil {
		t.Fatal(err)
	}
	p.waitHolder(t, vipA, "n2")
	if st := p.mgrs["n1"].Stats(); !st.Maintenance || st.Healthy || st.Up != 0 {
		t.Fatalf("n1 stats in maintenance: %+v", st)
	}
	if err := p.mgrs["n1"].SetMaintenance(false); err != nil {
		t.Fatal(err)
	}
	p.waitHolder(t, vipA, "n1")
	p.noConflicts(t)
	// Each handover went remove-then-add: the fake saw no overlap, and
	// every hook-down follows its node's remove.
	last := map[string]string{}
	for _, o := range p.log.Ops() {
		if o.Kind == viptest.OpHookDown && last[o.Node] != viptest.OpRemove {
			t.Fatalf("%v not after a remove", o)
		}
		if o.Kind != viptest.OpAnnounce {
			last[o.Node] = o.Kind
		}
	}
}

// When removal keeps failing the hook still hears "down", but only once
// the address has surely expired in the kernel.
func TestHookWaitsForExpiryWhenRemoveFails(t *testing.T) {
	p := newPairWithLog(t, viptest.NewLog(nil), pairConfig(vipOn(vipA, "n1", "n2")))
	p.waitHolder(t, vipA, "n1")
	p.log.Backend("n1").Fail(viptest.OpRemove, viptest.ErrInjected)
	p.waitSIPLeader(t)
	p.c.Isolate("n1")
	ownershiptest.WaitFor(t, 10*time.Second, "n1 hook-down", func() bool {
		return len(p.log.Filter("n1", viptest.OpHookDown)) == 1
	})
	adds := p.log.Filter("n1", viptest.OpAdd)
	down := p.log.Filter("n1", viptest.OpHookDown)[0]
	// Lifetime 1 s: the kernel may keep it up to 2 s after the last renewal.
	if gap := down.At.Sub(adds[len(adds)-1].At); gap < 2*time.Second {
		t.Fatalf("hook-down %v after the last renewal, want ≥ 2s", gap)
	}
	if st := p.mgrs["n1"].Stats(); st.Errors == 0 || st.Up != 0 {
		t.Fatalf("n1 stats %+v", st)
	}
}

func TestCloseRemovesAndStops(t *testing.T) {
	clustertest.CheckLeaks(t)
	log := viptest.NewLog(nil)
	own := ownership.NewSingle("n1")
	defer own.Close()
	m, err := vip.New(context.Background(), own, log.Backend("n1"),
		vip.Config{VIPs: []vip.VIP{vipOn(vipA)}, Hook: log.Hook("n1", nil)})
	if err != nil {
		t.Fatal(err)
	}
	ownershiptest.WaitFor(t, 5*time.Second, "hook-up", func() bool { return len(log.Filter("n1", viptest.OpHookUp)) == 1 })
	m.Close()
	m.Close()
	got := kinds(log.Filter("n1", viptest.OpAdd, viptest.OpRemove, viptest.OpHookUp, viptest.OpHookDown))
	want := []string{viptest.OpRemove, viptest.OpAdd, viptest.OpHookUp, viptest.OpRemove, viptest.OpHookDown}
	if !slices.Equal(got, want) {
		t.Fatalf("ops %v, want %v", got, want)
	}
	if h := log.Holders(vipA); len(h) != 0 {
		t.Fatalf("holders after Close: %v", h)
	}
}

func TestChecksNeedHealthSetter(t *testing.T) {
	own := ownership.NewSingle("n1")
	defer own.Close()
	_, err := vip.New(context.Background(), own, vip.FuncBackend{}, vip.Config{VIPs: []vip.VIP{vipOn(vipA)},
		Checks: []vip.Check{{Name: "x", Run: func(context.Context) error { return nil }}}})
	if !errors.Is(err, vip.ErrNoHealth) {
		t.Fatalf("err %v, want ErrNoHealth", err)
	}
}

func TestStartupRemoveFailureIsAnError(t *testing.T) {
	own := ownership.NewSingle("n1")
	defer own.Close()
	be := vip.FuncBackend{RemoveFunc: func(context.Context, vip.VIP) error { return errors.New("EPERM") }}
	if _, err := vip.New(context.Background(), own, be, vip.Config{VIPs: []vip.VIP{vipOn(vipA)}}); !errors.Is(err, vip.ErrBackend) {
		t.Fatalf("err %v, want ErrBackend", err)
	}
}

// Applications close in any order: the vip.Manager after its ownership
// manager must still take the address down and return.
func TestCloseAfterOwnershipClosed(t *testing.T) {
	clustertest.CheckLeaks(t)
	log := viptest.NewLog(nil)
	own := ownership.NewSingle("n1")
	m, err := vip.New(context.Background(), own, log.Backend("n1"), vip.Config{VIPs: []vip.VIP{vipOn(vipA)}, Hook: log.Hook("n1", nil)})
	if err != nil {
		t.Fatal(err)
	}
	ownershiptest.WaitFor(t, 5*time.Second, "hook-up", func() bool { return len(log.Filter("n1", viptest.OpHookUp)) == 1 })
	own.Close()
	m.Close()
	if h := log.Holders(vipA); len(h) != 0 {
		t.Fatalf("holders after Close: %v", h)
	}
}
