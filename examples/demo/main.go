// Command demo runs a 3-node sipha cluster in one process on loopback — the
// real TCP transport, real Raft on temporary directories — and walks through
// what high availability means for it: nodes elect a leader, resources get
// owners, CDRs are posted with failover between two collectors, then the
// owner of the floating address is killed and the report shows what moved,
// how fast, and that no CDR was lost.
//
//	go run ./examples/demo        # progress and a report; exits 0 when every check holds
//	go run ./examples/demo -v     # with the nodes' logs
//
// The cluster is package siphatest's, on loopback: the same wiring users
// get in their unit tests. Registrations (usrloc), calls in a dialog
// profile and the cluster-wide CPS limit (ratelimit) are checked across the
// kill; the VIP itself (on a real interface) and partition are not in the
// demo yet.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/siphatest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "also print the nodes' logs")
	cdrs := fs.Int("cdrs", 100, "CDRs each node posts in each phase")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo [-v] [-cdrs N]\n\nRuns a 3-node sipha cluster on loopback, kills a node and reports what failed over.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	var logs io.Writer
	if *verbose {
		logs = os.Stderr
	}
	if err := run(ctx, os.Stdout, logs, *cdrs); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// Resources the demo places on the cluster. The VIP resource is what a
// vip.Manager would act on; here it shows who would hold the address.
var resources = []ownership.Spec{
	{Name: "vip/198.51.100.10", Candidates: []cluster.NodeID{"n1", "n2", "n3"}, Policy: ownership.Sticky},
	{Name: "tenant/acme", Candidates: []cluster.NodeID{"n2", "n3", "n1"}, Policy: ownership.Preferred},
	{Name: "tenant/globex", Candidates: []cluster.NodeID{"n3", "n1", "n2"}, Policy: ownership.Preferred},
}

// report collects what the demo saw, for the summary at the end.
type report struct {
	lines []string
	fails []string
}

func (r *report) add(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}
func (r *report) check(ok bool, format string, args ...any) {
	mark := "ok  "
	if !ok {
		mark = "FAIL"
		r.fails = append(r.fails, fmt.Sprintf(format, args...))
	}
	r.lines = append(r.lines, mark+" "+fmt.Sprintf(format, args...))
}

func run(ctx context.Context, out, logs io.Writer, perPhase int) (err error) {
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	var rep report
	// The harness takes a test's TB; a program gives it a Standalone, whose
	// Fatalf panics with a *siphatest.Failure and whose Close stops every
	// node and reports goroutines left running.
	tb := siphatest.NewStandalone("demo", logs)
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(*siphatest.Failure)
			if !ok {
				panic(r)
			}
			err = f
		}
		if cerr := tb.Close(); err == nil {
			err = cerr
		}
	}()

	step("starting two CDR collectors on loopback (primary, backup)")
	primary, err := startCollector("primary", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer primary.close()
	backup, err := startCollector("backup", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer backup.close()

	step("starting nodes n1, n2, n3 with siphatest: transport and Raft on one authenticated port each, usrloc, dialog, ratelimit, cdr")
	t0 := time.Now()
	c := startCluster(tb, []string{primary.url, backup.url}, logs)
	rep.add("cluster: %d nodes up, Raft leader %s, every lease held and every block synced %v after start",
		len(c.IDs()), c.Leader(), ms(time.Since(t0)))

	step("registering resources and waiting for their owners")
	for _, spec := range resources {
		if err := c.Node("n1").Ownership.Ensure(ctx, spec); err != nil {
			return fmt.Errorf("ensure %s: %w", spec.Name, err)
		}
	}
	for _, spec := range resources {
		// A resource first goes to a candidate the leader already knows to
		// be live; a Preferred one then moves to its primary after the
		// hold-down. Wait for that, so the kill below hits a settled cluster.
		settled := func() bool {
			id, _, n := holder(c, spec.Name)
			return n == 1 && (spec.Policy != ownership.Preferred || id == spec.Candidates[0])
		}
		if err := waitFor(20*time.Second, spec.Name+" placed", settled); err != nil {
			return err
		}
		id, epoch, _ := holder(c, spec.Name)
		fmt.Fprintf(out, "    %-20s held by %s at epoch %d\n", spec.Name, id, epoch)
	}

	step("posting %d CDRs per node; primary collector up", perPhase)
	posted := map[string]bool{}
	post := func(phase string) error {
		for _, n := range c.Running() {
			for i := 0; i < perPhase; i++ {
				id := fmt.Sprintf("%s-%s-%04d", phase, n.ID, i)
				rec := cdr.Record{ID: id, Fields: map[string]any{"node": string(n.ID), "phase": phase, "billsec": i % 300}}
				if _, err := n.CDR.Post(ctx, rec); err != nil {
					return fmt.Errorf("post %s: %w", id, err)
				}
				posted[id] = true
			}
		}
		return nil
	}
	if err := post("a"); err != nil {
		return err
	}
	flushAll(ctx, c)

	step("primary collector down; posting %d more per node (they fail over to the backup)", perPhase)
	primary.stop()
	if err := post("b"); err != nil {
		return err
	}
	flushAll(ctx, c)
	if err := primary.restart(); err != nil {
		return err
	}

	claim, _ := c.Owner(resources[0].Name)
	victim := claim.Node
	role := "a follower"
	if c.Leader() == victim {
		role = "the Raft leader"
	}
	step("alice registers and places 2 acme calls through %s; every node asks for acme calls at 10x its %d/s limit", victim, acmeCPS)
	if err := callsAndRegistration(c, victim); err != nil {
		return err
	}
	admitted, elapsed := askCPS(c.Running(), time.Second)
	rep.check(float64(admitted) <= cpsBound(elapsed), "CPS limit: %d acme calls admitted in %v across 3 nodes (limit %d/s cluster-wide)",
		admitted, ms(elapsed), acmeCPS)

	step("killing %s (owner of %s, %s): connections drop, no goodbye, no handover", victim, resources[0].Name, role)
	// What the victim owns is read from the committed table: Held may be
	// false for a moment when a lease renewal runs late on a busy host.
	lost := map[string]bool{}
	for _, spec := range resources {
		if claim, _ := c.Owner(spec.Name); claim.Node == victim {
			lost[spec.Name] = true
		}
	}
	killedAt := time.Now()
	c.Kill(victim)
	for _, spec := range resources {
		if !lost[spec.Name] {
			continue
		}
		if err := waitFor(10*time.Second, spec.Name+" taken over", func() bool { id, _, n := holder(c, spec.Name); return n == 1 && id != victim }); err != nil {
			return err
		}
		id, epoch, _ := holder(c, spec.Name)
		rep.add("failover: %s moved %s → %s (epoch %d) %v after the kill", spec.Name, victim, id, epoch, ms(time.Since(killedAt)))
	}
	maxHolders := 0
	for _, spec := range resources {
		_, _, n := holder(c, spec.Name)
		maxHolders = max(maxHolders, n)
	}
	rep.check(maxHolders == 1, "every resource held by exactly one live node after the kill")
	survivorsKeepState(&rep, c, victim)
	admitted, elapsed = askCPS(c.Running(), time.Second)
	rep.check(float64(admitted) <= cpsBound(elapsed), "CPS limit after the kill: %d acme calls admitted in %v across the 2 survivors",
		admitted, ms(elapsed))

	step("posting %d CDRs per surviving node", perPhase)
	if err := post("c"); err != nil {
		return err
	}
	step("restarting %s on its data and spool directories: it rejoins and replays its spool", victim)
	c.Restart(victim)
	if err := waitFor(15*time.Second, "every CDR collected", func() bool {
		return primary.distinct()+backup.distinct() >= len(posted) && len(missing(posted, primary, backup)) == 0
	}); err != nil {
		rep.check(false, "%v (%d CDRs missing)", err, len(missing(posted, primary, backup)))
	}
	for _, spec := range resources[1:] {
		// Preferred resources return to their primary once it is back.
		if spec.Candidates[0] == victim {
			err := waitFor(15*time.Second, spec.Name+" back on "+string(victim), func() bool { id, _, _ := holder(c, spec.Name); return id == victim })
			rep.check(err == nil, "%s returned to %s (preferred policy)", spec.Name, victim)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = c.WaitReady(rctx)
	rep.check(err == nil && len(c.Node(victim).Locations.Store.Lookup(aliceAOR, nil)) == 1,
		"%s resynced after its restart: alice's binding is back on it", victim)

	miss := missing(posted, primary, backup)
	rep.check(len(miss) == 0, "CDRs: %d posted, %d distinct collected (primary %d, backup %d), %d duplicates dropped by the collectors",
		len(posted), len(posted)-len(miss), primary.distinct(), backup.distinct(), primary.dups()+backup.dups())
	rep.check(backup.distinct() > 0, "the backup collector took CDRs while the primary was down")

	fmt.Fprintln(out)
	fmt.Fprintln(out, "sipha demo report")
	fmt.Fprintln(out, strings.Repeat("-", 60))
	for _, l := range rep.lines {
		fmt.Fprintln(out, "  "+l)
	}
	fmt.Fprintln(out, "  not yet in the demo: partition, vip on a real interface")
	if len(rep.fails) > 0 {
		return fmt.Errorf("%d checks failed: %s", len(rep.fails), strings.Join(rep.fails, "; "))
	}
	return nil
}

func flushAll(ctx context.Context, c *siphatest.Cluster) {
	for _, n := range c.Running() {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n.CDR.Flush(fctx)
		cancel()
	}
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
