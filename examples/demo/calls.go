package main

import (
	"fmt"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/siphatest"
	"github.com/sipha/sipha/usrloc"
)

const aliceAOR = "sip:alice@acme.example"

// demoCalls are the calls placed through the node that will be killed.
var demoCalls = []dialog.ID{{CallID: "demo-call-1", FromTag: "a1"}, {CallID: "demo-call-2", FromTag: "a2"}}

// callsAndRegistration registers alice and places two answered acme calls
// through node id, then waits until every node has both.
func callsAndRegistration(c *siphatest.Cluster, id cluster.NodeID) error {
	n := c.Node(id)
	_, err := n.Locations.Store.Register(usrloc.Registration{AOR: aliceAOR, CallID: "demo-reg", CSeq: 1,
		Contacts: []usrloc.ContactUpdate{{URI: "sip:alice@192.0.2.10:5060", Expires: time.Hour}}}, nil)
	if err != nil {
		return fmt.Errorf("register alice: %w", err)
	}
	for i, call := range demoCalls {
		if err := n.Dialogs.Begin(call); err != nil {
			return err
		}
		if err := n.Dialogs.AddProfile(call, "calls", "acme"); err != nil {
			return err
		}
		if err := n.Dialogs.Answer(call, fmt.Sprintf("callee-%d", i)); err != nil {
			return err
		}
	}
	return waitFor(10*time.Second, "alice and both calls on every node", func() bool {
		for _, n := range c.Running() {
			if len(n.Locations.Store.Lookup(aliceAOR, nil)) != 1 || n.Dialogs.Count("calls", "acme") != len(demoCalls) {
				return false
			}
		}
		return true
	})
}

// survivorsKeepState checks what the dead node did is still known: its
// registration, its calls in the profile, and one survivor adopting its
// dialogs (their timers and terminate hooks).
func survivorsKeepState(rep *report, c *siphatest.Cluster, dead cluster.NodeID) {
	ok := true
	for _, n := range c.Running() {
		ok = ok && len(n.Locations.Store.Lookup(aliceAOR, nil)) == 1
	}
	rep.check(ok, "alice's registration (made on %s) found on every survivor", dead)
	ok = true
	for _, n := range c.Running() {
		ok = ok && n.Dialogs.Count("calls", "acme") == len(demoCalls)
	}
	rep.check(ok, "%d acme calls set up on %s still counted on every survivor", len(demoCalls), dead)
	res := ownership.NodeResource(dead)
	err := waitFor(10*time.Second, res+" adopted", func() bool { id, _, n := holder(c, res); return n == 1 && id != dead })
	id, _, _ := holder(c, res)
	rep.check(err == nil, "%s's dialogs adopted by %s (it now runs their timers and terminate hooks)", dead, id)
}

// askCPS asks every node for acme calls far above the limit for d and
// returns how many the cluster admitted and over how long.
func askCPS(nodes []*siphatest.Node, d time.Duration) (int, time.Duration) {
	admitted := 0
	start := time.Now()
	for time.Since(start) < d {
		for _, n := range nodes {
			for range 5 {
				if n.Limiter.Allow("acme") {
					admitted++
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return admitted, time.Since(start)
}

// cpsBound is the most the cluster may admit in elapsed: the rate, plus
// the bucket's burst (Rate × 100 ms), plus at least one call per node.
func cpsBound(elapsed time.Duration) float64 {
	return acmeCPS*elapsed.Seconds() + acmeCPS/10 + 3
}
