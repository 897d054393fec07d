// Command demo runs a 3-node sipha cluster in one process on loopback — the
// real TCP transport, real Raft on temporary directories, and on every node
// examples/registrar's SIP proxy on a UDP port — and walks through what high
// availability means for it: nodes elect a leader, resources get owners,
// CDRs are posted with failover between two collectors, sipgo softphones
// register through one node and are called through another, a flood of
// INVITEs meets the cluster-wide CPS limit, then the node the phones
// registered through (the owner of the floating address) is killed and the
// report shows what moved, how fast, that calls still reach the phones,
// and that every call has exactly one CDR.
//
//	go run ./examples/demo        # progress and a report; exits 0 when every check holds
//	go run ./examples/demo -v     # with the nodes' logs
//
// The cluster is package siphatest's, on loopback: the same wiring users
// get in their unit tests. Tenants are placed with package partition. The
// VIP on a real interface is not in the demo (it needs root and a network
// namespace: package vip's tests do that).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
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
	users := fs.Int("users", 20, "softphones that register and get called")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: demo [-v] [-cdrs N] [-users N]\n\nRuns a 3-node sipha cluster on loopback, kills a node and reports what failed over.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	var logs io.Writer
	sipgoLogs := slog.New(slog.DiscardHandler)
	if *verbose {
		logs = os.Stderr
		sipgoLogs = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// sipgo's transports log through a package-wide logger (on closing a
	// UA's UDP connections, "ref went negative" warnings): a program may
	// set it, and the demo keeps its output to the report unless -v.
	sip.SetDefaultLogger(sipgoLogs)
	if err := run(ctx, os.Stdout, logs, *cdrs, *users); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// Resources the demo places on the cluster. The VIP resource is what a
// vip.Manager would act on; here it shows who would hold the address.
var resources = []ownership.Spec{
	{Name: "vip/198.51.100.10", Candidates: []cluster.NodeID{"n1", "n2", "n3"}, Policy: ownership.Sticky},
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

// demo is one run's state, shared by its phases.
type demo struct {
	out             io.Writer
	rep             report
	c               *sipCluster
	primary, backup *collector
	ps              *phones
	posted          map[string]bool // synthetic CDR IDs posted
	perPhase        int
	// victim is the node the phones register through and the one killed;
	// via is where the caller places its calls, other the third node.
	victim, via, other cluster.NodeID
	sipAddr            map[cluster.NodeID]string // every node's first SIP address
}

func (d *demo) step(format string, args ...any) { fmt.Fprintf(d.out, "==> "+format+"\n", args...) }

func run(ctx context.Context, out, logs io.Writer, perPhase, users int) (err error) {
	if perPhase < 0 || users < 1 {
		return fmt.Errorf("demo: need -cdrs ≥ 0 and -users ≥ 1")
	}
	d := &demo{out: out, perPhase: perPhase, posted: map[string]bool{}}
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

	d.step("starting two CDR collectors on loopback (primary, backup)")
	if d.primary, err = startCollector("primary", "127.0.0.1:0"); err != nil {
		return err
	}
	defer d.primary.close()
	if d.backup, err = startCollector("backup", "127.0.0.1:0"); err != nil {
		return err
	}
	defer d.backup.close()

	d.step("starting nodes n1, n2, n3 with siphatest (transport and Raft on one authenticated port each, usrloc, dialog, ratelimit, cdr) and a SIP proxy on each")
	t0 := time.Now()
	if d.c, err = startCluster(tb, []string{d.primary.url, d.backup.url}, logs); err != nil {
		return err
	}
	defer d.c.closeProxies()
	d.sipAddr = map[cluster.NodeID]string{}
	for _, id := range d.c.IDs() {
		d.sipAddr[id] = d.c.sip(id)
		fmt.Fprintf(out, "    %s  SIP on udp:%s\n", id, d.sipAddr[id])
	}
	d.rep.add("cluster: %d nodes up, Raft leader %s, every lease held, every block synced and SIP served %v after start",
		len(d.c.IDs()), d.c.Leader(), ms(time.Since(t0)))

	if err := d.placeResources(ctx); err != nil {
		return err
	}
	if err := d.placeTenants(ctx); err != nil {
		return err
	}
	if err := d.postSpoolFailover(ctx); err != nil {
		return err
	}
	if d.ps, err = startPhones(users); err != nil {
		return err
	}
	defer d.ps.close()
	if err := d.registerAndCall(ctx); err != nil {
		return err
	}
	if err := d.killAndFailover(ctx); err != nil {
		return err
	}
	if err := d.restart(ctx); err != nil {
		return err
	}
	d.checkCDRs()

	fmt.Fprintln(out)
	fmt.Fprintln(out, "sipha demo report")
	fmt.Fprintln(out, strings.Repeat("-", 60))
	for _, l := range d.rep.lines {
		fmt.Fprintln(out, "  "+l)
	}
	fmt.Fprintln(out, "  not in the demo: the VIP on a real interface (see vip's namespace tests)")
	if len(d.rep.fails) > 0 {
		return fmt.Errorf("%d checks failed: %s", len(d.rep.fails), strings.Join(d.rep.fails, "; "))
	}
	return nil
}

// placeResources registers the demo's resources and waits until each has
// its settled owner.
func (d *demo) placeResources(ctx context.Context) error {
	d.step("registering resources and waiting for their owners")
	for _, spec := range resources {
		if err := d.c.Node("n1").Ownership.Ensure(ctx, spec); err != nil {
			return fmt.Errorf("ensure %s: %w", spec.Name, err)
		}
	}
	for _, spec := range resources {
		// A resource first goes to a candidate the leader already knows to
		// be live; a Preferred one then moves to its primary after the
		// hold-down. Wait for that, so the kill below hits a settled cluster.
		settled := func() bool {
			id, _, n := holder(d.c, spec.Name)
			return n == 1 && (spec.Policy != ownership.Preferred || id == spec.Candidates[0])
		}
		if err := waitFor(20*time.Second, spec.Name+" placed", settled); err != nil {
			return err
		}
		id, epoch, _ := holder(d.c, spec.Name)
		fmt.Fprintf(d.out, "    %-20s held by %s at epoch %d\n", spec.Name, id, epoch)
	}
	return nil
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
