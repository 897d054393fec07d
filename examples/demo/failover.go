package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/emiago/sipgo"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/examples/registrar/proxy"
	"github.com/sipha/sipha/ownership"
)

// registerAndCall registers the callees through the VIP's owner (the node
// the demo kills later), has the caller call each of them through another
// node, and floods two nodes with INVITEs beyond the CPS limit.
func (d *demo) registerAndCall(ctx context.Context) error {
	claim, _ := d.c.Owner(resources[0].Name)
	d.victim = claim.Node
	ids := d.c.IDs()
	i := slices.Index(ids, d.victim)
	d.via, d.other = ids[(i+1)%len(ids)], ids[(i+2)%len(ids)]
	users := len(d.ps.callees)

	d.step("%d sipgo phones register through %s (owner of %s)", users, d.victim, resources[0].Name)
	start := time.Now()
	if err := d.ps.registerAll(ctx, d.c.sip(d.victim)); err != nil {
		return err
	}
	err := waitFor(10*time.Second, "every binding on every node", func() bool {
		for _, n := range d.c.Running() {
			if d.ps.bindings(n) != users {
				return false
			}
		}
		return true
	})
	d.rep.check(err == nil, "registrations: %d phones registered through %s, every binding on all 3 nodes %v after the first REGISTER",
		users, d.victim, ms(time.Since(start)))

	d.step("the caller calls each phone through %s: INVITE, 180, 200, ACK, BYE", d.via)
	start = time.Now()
	if err := d.ps.callEach(ctx, d.out, d.c.sip(d.via), users); err != nil {
		return err
	}
	d.rep.add("calls: %d calls through %s to phones registered through %s answered and hung up in %v",
		users, d.via, d.victim, ms(time.Since(start)))

	d.flood(ctx, "before the kill", d.via, d.other)
	return nil
}

// flood sends INVITEs far beyond the CPS limit through two nodes for a
// second and checks the cluster admitted no more than the limit.
func (d *demo) flood(ctx context.Context, when string, a, b cluster.NodeID) {
	d.step("a flood of INVITEs through %s and %s for 1s, %s (limit %d/s cluster-wide)", a, b, when, cps)
	admitted, refused, other, elapsed := d.ps.flood(ctx, []string{d.c.sip(a), d.c.sip(b)}, time.Second)
	d.rep.check(float64(admitted) <= cpsBound(elapsed) && refused > 0 && other == 0,
		"CPS limit %s: %d INVITEs through %s and %s in %v, %d admitted (at most %.0f allowed), %d got 503, %d other",
		when, admitted+refused+other, a, b, ms(elapsed), admitted, cpsBound(elapsed), refused, other)
}

// killAndFailover crashes the victim with a call up through another node,
// times the failover of what it owned and the first call answered after
// the kill, and checks what the survivors kept.
func (d *demo) killAndFailover(ctx context.Context) error {
	s, id, err := d.ps.dial(ctx, d.c.sip(d.via))
	if err != nil {
		return fmt.Errorf("call to keep up across the kill: %w", err)
	}
	limited, lid, err := d.limitedCall(ctx)
	if err != nil {
		return err
	}
	defer limited.Close() // no BYE: the cluster ended it
	role := "a follower"
	if d.c.Leader() == d.victim {
		role = "the Raft leader"
	}
	// What the victim owns is read from the committed table: Held may be
	// false for a moment when a lease renewal runs late on a busy host.
	lost := map[string]bool{}
	for _, spec := range resources {
		if claim, _ := d.c.Owner(spec.Name); claim.Node == d.victim {
			lost[spec.Name] = true
		}
	}
	d.step("killing %s (%s, owner of %s, registrar of the phones) with a call up through %s and one through %s: no goodbye, no handover",
		d.victim, role, resources[0].Name, d.via, d.victim)
	tenantsBefore := d.tenantClaims()
	killedAt := time.Now()
	d.c.crash(d.victim)
	type result struct {
		at     time.Time
		failed int
		err    error
	}
	first := make(chan result, 1)
	go func() {
		// New calls through the survivors, from the moment of the kill.
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		at, failed, err := d.ps.firstCall(cctx, []string{d.c.sip(d.via), d.c.sip(d.other)})
		first <- result{at, failed, err}
	}()
	for _, spec := range resources {
		if !lost[spec.Name] {
			continue
		}
		err := waitFor(10*time.Second, spec.Name+" taken over", func() bool {
			id, _, n := holder(d.c, spec.Name)
			return n == 1 && id != d.victim
		})
		if err != nil {
			<-first
			return err
		}
		id, epoch, _ := holder(d.c, spec.Name)
		d.rep.add("failover: %s moved %s → %s (epoch %d) %v after the kill", spec.Name, d.victim, id, epoch, ms(time.Since(killedAt)))
	}
	d.tenantsFailover(tenantsBefore, killedAt)
	r := <-first
	d.rep.check(r.err == nil, "first new call through a survivor to a phone registered on %s: answered %v after the kill (%d failed attempts)",
		d.victim, ms(r.at.Sub(killedAt)), r.failed)
	err = d.ps.hangUp(ctx, s, id)
	d.rep.check(err == nil, "the call up through %s at the kill was hung up after it (BYE passed)", d.via)

	maxHolders := 0
	for _, spec := range resources {
		_, _, n := holder(d.c, spec.Name)
		maxHolders = max(maxHolders, n)
	}
	d.rep.check(maxHolders == 1, "every resource held by exactly one live node after the kill")
	ok := true
	for _, n := range d.c.Running() {
		ok = ok && d.ps.bindings(n) == len(d.ps.callees)
	}
	d.rep.check(ok, "the %d bindings registered through %s still on every survivor", len(d.ps.callees), d.victim)
	res := ownership.NodeResource(d.victim)
	err = waitFor(10*time.Second, res+" adopted", func() bool { id, _, n := holder(d.c, res); return n == 1 && id != d.victim })
	adopter, _, _ := holder(d.c, res)
	d.rep.check(err == nil, "%s's dialogs adopted by %s (it now runs their timers and CDR hooks)", d.victim, adopter)
	var f callCDR
	err = waitFor(10*time.Second, "the CDR of the limited call", func() bool {
		var ok bool
		f, ok = find(proxy.CDRID(lid), d.primary, d.backup)
		return ok
	})
	d.rep.check(err == nil && f.firedBy == string(adopter) && f.reason == dialog.ReasonMaxDuration.String(),
		"a call up through %s at the kill, limited to %v: ended by %s at its limit, CDR posted by %q (reason %q)",
		d.victim, callLimit, adopter, f.firedBy, f.reason)
	d.ps.ended(lid)
	d.flood(ctx, "after the kill", d.via, d.other)
	return nil
}

// restart brings the victim back on its data and spool with its proxy on
// its old SIP address, and checks it resyncs and serves calls again.
func (d *demo) restart(ctx context.Context) error {
	d.step("posting %d CDRs per surviving node", d.perPhase)
	if err := d.post(ctx, "c"); err != nil {
		return err
	}
	d.step("restarting %s on its data and spool directories: it rejoins, resyncs and replays its spool", d.victim)
	addr := d.sipAddr[d.victim]
	d.c.Restart(d.victim)
	if err := d.c.serve(d.victim, addr); err != nil {
		return err
	}
	for _, spec := range resources[1:] {
		// Preferred resources return to their primary once it is back.
		if spec.Candidates[0] == d.victim {
			err := waitFor(15*time.Second, spec.Name+" back on "+string(d.victim), func() bool {
				id, _, _ := holder(d.c, spec.Name)
				return id == d.victim
			})
			d.rep.check(err == nil, "%s returned to %s (preferred policy)", spec.Name, d.victim)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := d.c.WaitReady(rctx)
	d.rep.check(err == nil && d.ps.bindings(d.c.Node(d.victim)) == len(d.ps.callees),
		"%s resynced after its restart: the %d bindings are back on it", d.victim, len(d.ps.callees))
	s, id, err := d.ps.dial(ctx, addr)
	if err == nil {
		err = d.ps.hangUp(ctx, s, id)
	}
	d.rep.check(err == nil, "a call through %s, back on its old SIP address, reached a phone", d.victim)
	return nil
}

// callLimit is the maximum duration the demo gives the call it places
// through the node it kills: the node that adopts the dead node's dialogs
// must end it, and post its CDR.
const callLimit = 2 * time.Second

// limitedCall places a call through the victim and gives it a maximum
// duration (as a prepaid application would), and waits until every node
// has the limit.
func (d *demo) limitedCall(ctx context.Context) (*sipgo.DialogClientSession, dialog.ID, error) {
	s, id, err := d.ps.dial(ctx, d.c.sip(d.victim))
	if err != nil {
		return nil, id, fmt.Errorf("limited call through %s: %w", d.victim, err)
	}
	tr := d.c.Node(d.victim).Dialogs
	// The limit and then a variable naming it: the record replicates whole,
	// so a node that has the variable has the limit.
	if err = tr.SetMaxDuration(id, callLimit); err == nil {
		err = tr.SetVar(id, "limit", callLimit.String())
	}
	if err == nil {
		err = waitFor(5*time.Second, "the call's limit on every node", func() bool {
			for _, n := range d.c.Running() {
				if v, _ := n.Dialogs.Var(id, "limit"); v != callLimit.String() {
					return false
				}
			}
			return true
		})
	}
	if err != nil {
		s.Close()
		return nil, id, fmt.Errorf("limit of the call through %s: %w", d.victim, err)
	}
	return s, id, nil
}
