package dialog

import (
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// INVITE through n1, ACK and BYE through n2: the dialog ends on every node,
// its terminate hook fires once, on the owner of node/n1.
func TestByeOnAnotherNode(t *testing.T) {
	clustertest.CheckLeaks(t)
	c := newTestCluster(t, 1, 3, nil)
	a, b := c.D("n1"), c.D("n2")
	call := call{"x1", "ft", "tt"}
	id, err := a.Invite(call.invite(t))
	if err != nil {
		t.Fatal(err)
	}
	a.AddProfile(id, "calls-per-tenant", "acme")
	a.SetVar(id, "tenant", "acme")
	a.Response(call.res(t, 200, "tt"))
	c.Eventually(5*time.Second, "all nodes count the call", func() bool { return c.countsAgree("calls-per-tenant", "acme", 1) })
	// The variable is a change of its own, after the profile's: counting
	// the call does not mean it has arrived yet.
	c.Eventually(5*time.Second, "n2 has the call's variable", func() bool { v, _ := b.Var(id, "tenant"); return v == "acme" })
	c.Eventually(5*time.Second, "n2 sees the answer", func() bool { in, _ := b.Get(id); return in.State == Confirmed })
	if _, ok := b.Request(call.req(t, "ACK", false, 1)); !ok {
		t.Fatal("ACK on n2 not matched")
	}
	if _, ok := b.Request(call.req(t, "BYE", false, 2)); !ok {
		t.Fatal("BYE on n2 not matched")
	}
	c.Eventually(5*time.Second, "every node ends the call", func() bool {
		for _, d := range c.Running() {
			if in, _ := d.Get(id); in.State != Terminated {
				return false
			}
		}
		return c.countsAgree("calls-per-tenant", "acme", 0)
	})
	c.Eventually(5*time.Second, "the terminate hook", func() bool { return len(c.hooks.get(id)) > 0 })
	time.Sleep(300 * time.Millisecond)
	evs := c.hooks.get(id)
	// n1 holds node/n1 unless its lease lapsed under load and the resource
	// moved (Sticky): the hook must come from the holder either way.
	if len(evs) != 1 || evs[0].FiredBy != c.Holder("n1") || evs[0].TerminatedBy != "n2" || evs[0].HungUp != PartyCaller || !evs[0].Acked {
		t.Fatalf("terminate events %+v (node/n1 held by %s)", evs, c.Holder("n1"))
	}
	for _, d := range c.Running() {
		if s := d.Stats(); s.Underflows != 0 || s.Malformed != 0 {
			t.Fatalf("%s stats %+v", d.LocalID(), s)
		}
	}
}

// The owner dies mid-call: the call stays counted on the survivors, the
// next candidate of node/n1 takes its timer over, and the timeout fires
// once.
func TestKillOwnerMidCall(t *testing.T) {
	clustertest.CheckLeaks(t)
	const maxDur = 4 * time.Second
	c := newTestCluster(t, 2, 3, func(cfg *Config) { cfg.MaxDuration = maxDur })
	a := c.D("n1")
	call := call{"k1", "ft", "tt"}
	id, _ := a.Invite(call.invite(t))
	a.AddProfile(id, "p", "")
	a.Response(call.res(t, 200, "tt"))
	a.Request(call.req(t, "ACK", false, 1))
	c.Eventually(5*time.Second, "all count it", func() bool { return c.countsAgree("p", "", 1) })
	start := time.Now()
	owner := c.Holder("n1")
	if owner != "n1" {
		t.Fatalf("node/n1 held by %s, want n1 (the origin is the owner)", owner)
	}
	c.Kill(owner)
	if !c.countsAgree("p", "", 1) {
		t.Fatal("the call was dropped when its owner died")
	}
	var next cluster.NodeID
	c.Eventually(10*time.Second, "another node takes node/n1", func() bool { next = c.Holder("n1"); return next != "" })
	// Unless the takeover was slow enough for the call to reach its
	// maximum (a loaded machine), it is still counted after it.
	if took := time.Since(start); took < maxDur-time.Second && !c.countsAgree("p", "", 1) {
		t.Fatalf("the call was dropped at the takeover (%v after the kill)", took)
	}
	c.Eventually(15*time.Second, "the timeout", func() bool { return len(c.hooks.get(id)) > 0 })
	c.Eventually(5*time.Second, "survivors end the call", func() bool { return c.countsAgree("p", "", 0) })
	time.Sleep(500 * time.Millisecond)
	evs := c.hooks.get(id)
	// node/n1 is Preferred: if the first taker was not its best live
	// candidate it moves on after the hold-down, and the timer with it, so
	// the timeout fires once from whichever survivor held it then.
	survivor := false
	for _, d := range c.Running() {
		survivor = survivor || (len(evs) > 0 && d.LocalID() == evs[0].FiredBy)
	}
	if len(evs) != 1 || evs[0].Reason != ReasonMaxDuration || !survivor {
		t.Fatalf("terminate events %+v (node/n1 first taken by %s, held by %s)", evs, next, c.Holder("n1"))
	}
	if d := evs[0].Duration(); d < maxDur {
		t.Fatalf("ended after %v, before its maximum", d)
	}
	for _, d := range c.Running() {
		if s := d.Stats(); s.Underflows != 0 {
			t.Fatalf("%s underflows %d", d.LocalID(), s.Underflows)
		}
	}
}

// A node that comes back gets its node resource back (Preferred): the peer
// that took it over while it was down stops running its dialogs, and the
// node's own new dialogs are its own again. With Sticky the peer kept it
// for good, posting the node's CDRs (seen wiring examples/registrar).
func TestNodeResourceReturnsAfterRestart(t *testing.T) {
	clustertest.CheckLeaks(t)
	c := newTestCluster(t, 7, 3, nil)
	c.Kill("n1")
	var next cluster.NodeID
	c.Eventually(10*time.Second, "another node takes node/n1", func() bool { next = c.Holder("n1"); return next != "" })
	c.Start("n1")
	c.Eventually(20*time.Second, "node/n1 back on n1", func() bool { return c.Holder("n1") == "n1" })
	t.Logf("node/n1 went to %s and came back to n1", next)
}
