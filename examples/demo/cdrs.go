package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/examples/registrar/proxy"
)

// postSpoolFailover posts a batch of CDRs on every node with the primary
// collector up, then another with it down: the posters fail over to the
// backup.
func (d *demo) postSpoolFailover(ctx context.Context) error {
	d.step("posting %d CDRs per node; primary collector up", d.perPhase)
	if err := d.post(ctx, "a"); err != nil {
		return err
	}
	flushAll(ctx, d.c)
	d.step("primary collector down; posting %d more per node (they fail over to the backup)", d.perPhase)
	d.primary.stop()
	if err := d.post(ctx, "b"); err != nil {
		return err
	}
	flushAll(ctx, d.c)
	return d.primary.restart()
}

// post has every running node post perPhase CDRs of a phase.
func (d *demo) post(ctx context.Context, phase string) error {
	for _, n := range d.c.Running() {
		for i := 0; i < d.perPhase; i++ {
			id := fmt.Sprintf("%s-%s-%04d", phase, n.ID, i)
			rec := cdr.Record{ID: id, Fields: map[string]any{"node": string(n.ID), "phase": phase, "billsec": i % 300}}
			if _, err := n.CDR.Post(ctx, rec); err != nil {
				return fmt.Errorf("post %s: %w", id, err)
			}
			d.posted[id] = true
		}
	}
	return nil
}

func flushAll(ctx context.Context, c *sipCluster) {
	for _, n := range c.Running() {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n.CDR.Flush(fctx)
		cancel()
	}
}

// checkCDRs waits for every CDR at the collectors and checks none was lost
// and every finished call has exactly one CDR ID.
func (d *demo) checkCDRs() {
	calls := map[string]string{} // Call-ID → the CDR ID its dialog must have
	for _, id := range d.ps.finished {
		calls[id.CallID] = proxy.CDRID(id)
	}
	callsIn := func() (missing, extra int) {
		got := cdrsByCall(d.primary, d.backup)
		for callID, want := range calls {
			if !got[callID][want] {
				missing++
			}
		}
		for _, ids := range got {
			extra += len(ids) - 1
		}
		return missing, extra
	}
	if err := waitFor(15*time.Second, "every CDR collected", func() bool {
		m, _ := callsIn()
		return m == 0 && len(missing(d.posted, d.primary, d.backup)) == 0
	}); err != nil {
		d.rep.check(false, "%v", err)
	}
	miss := missing(d.posted, d.primary, d.backup)
	m, extra := callsIn()
	d.rep.check(m == 0 && extra == 0, "call CDRs: %d calls finished, each with exactly one CDR ID at the collectors (%d missing, %d with a second ID)",
		len(calls), m, extra)
	d.rep.check(len(miss) == 0, "CDRs: %d synthetic posted, %d collected; primary holds %d, backup %d; %d duplicate posts dropped by the collectors",
		len(d.posted), len(d.posted)-len(miss), d.primary.distinct(), d.backup.distinct(), d.primary.dups()+d.backup.dups())
	d.rep.check(d.backup.distinct() > 0, "the backup collector took CDRs while the primary was down")
}
