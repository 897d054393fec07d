package siphatest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/usrloc"
	"github.com/sipha/sipha/vip"
)

// ErrOptions reports Options that cannot make a cluster.
var ErrOptions = errors.New("siphatest: invalid options")

// Blocks is a set of sipha blocks a node runs on top of the transport and
// the ownership layer (which every node always runs).
type Blocks uint8

// The blocks a node can run.
const (
	BlockLocations  Blocks = 1 << iota // usrloc Store, Replicator and Registrar
	BlockDialogs                       // dialog.Tracker
	BlockLimiter                       // ratelimit.Limiter in cluster mode
	BlockPartitions                    // partition.Partitioner
	BlockVIPs                          // vip.Manager on viptest's recording fake
	BlockCDRs                          // cdr.Poster posting to the cluster's collector

	AllBlocks = BlockLocations | BlockDialogs | BlockLimiter | BlockPartitions | BlockVIPs | BlockCDRs
)

// DefaultVIP is the floating address a cluster manages when Options.VIPs is
// empty (TEST-NET-2, never routed).
var DefaultVIP = netip.MustParsePrefix("198.51.100.10/24")

// DefaultTimeout bounds the harness's waits when Options.Timeout is zero.
const DefaultTimeout = 20 * time.Second

// vipLifetime is the kernel valid lifetime the harness gives VIP
// addresses: vip's minimum, so a crashed holder's address lapses soonest.
const vipLifetime = time.Second

// Options configures a test cluster. The zero value runs every block with
// LAN timings on clustertest's in-memory network.
type Options struct {
	// Disable lists blocks not to run (the transport and ownership always
	// run).
	Disable Blocks
	// Spares makes the last Spares nodes spare nodes: raftowner.RoleSpare
	// and partition.Spare, owning nothing until an active node fails.
	Spares int
	// Limits are the cluster-wide calls-per-second limits per pipe, and
	// DefaultLimit the limit of any other pipe (zero: unlimited).
	Limits       map[string]ratelimit.Limit
	DefaultLimit ratelimit.Limit
	// VIPs are the floating addresses the vip block manages, one
	// ownership resource each; default DefaultVIP.
	VIPs []netip.Prefix
	// Keepalive, when set with the locations block, runs a usrloc.Pinger
	// on every node: each node calls Keepalive for the UDP bindings whose
	// socket resource ("socket/" + Binding.Socket) it holds, once per
	// KeepaliveInterval (default 200 ms). Register the socket resources
	// with a node's Ownership.Ensure. Concurrency: called from each node's
	// pinger goroutine, one binding at a time per node.
	Keepalive         func(ctx context.Context, node cluster.NodeID, b usrloc.Binding) error
	KeepaliveInterval time.Duration
	// Seed seeds the in-memory network's random choices (which chunks a
	// drop rate set on Network delays). Zero picks one; either way
	// NewCluster logs it, and passing it back replays those choices.
	// Goroutine scheduling and timers are the runtime's and do not replay.
	Seed int64
	// Loopback runs the nodes on real TCP on 127.0.0.1 instead of the
	// in-memory network (for demos and end-to-end runs). Network faults
	// (Partition, Isolate, Network) then are not available; Kill and
	// Restart are.
	Loopback bool
	// Timeout bounds NewCluster's wait for a ready cluster, Restart's start
	// and Eventually; default DefaultTimeout.
	Timeout time.Duration
	// NoLeakCheck turns off the goroutine-leak check at cleanup (needed
	// when tests run in parallel: the check cannot tell their goroutines
	// apart).
	NoLeakCheck bool
	// Logger receives every node's logs, tagged with "node"; default
	// discards them, or writes them to the test's log at debug level when
	// the environment sets SIPHA_DEBUG. TestLogger makes such a logger.
	Logger *slog.Logger
	// Tune adjusts a node's block configurations before each start (also
	// on Restart). The harness fills the fields that wire blocks together
	// (transports, ownership managers, clocks, loggers) after Tune, so
	// Tune changes timings and limits, not wiring.
	//
	// Concurrency: called from NewCluster and Restart, one node at a time.
	Tune func(id cluster.NodeID, c *Configs)
	// OnTerminate, when set with the dialog block, attaches a consumer of
	// each node's dialog terminate events (a CDR sink posting through
	// n.CDR, say). It runs at every start of a node (also on Restart),
	// after the node's CDR poster started (n.CDR is nil without the CDR
	// block) and before its dialog tracker does, and returns the tracker's
	// dialog.Config.OnTerminate and a stop func (either may be nil). The
	// harness calls stop when the node is killed or stopped, after the
	// tracker closed and before the poster does.
	//
	// Concurrency: called from NewCluster for every node at once, and from
	// Restart; the hook then has dialog.Config.OnTerminate's contract.
	OnTerminate func(n *Node) (hook func(dialog.TerminateEvent), stop func())
}

// Configs are the configurations of one node's blocks, as Options.Tune
// sees them.
type Configs struct {
	Cluster    cluster.Config
	Ownership  raftowner.Config
	Store      usrloc.Config
	Replicator usrloc.ReplicatorConfig
	Registrar  usrloc.RegistrarConfig
	Pinger     usrloc.PingerConfig // Owner and Send are the harness's
	Dialog     dialog.Config
	Limiter    ratelimit.Config
	Partition  partition.Config
	VIP        vip.Config
	CDR        cdr.Config
}

// Validate reports Options that cannot work whatever the cluster's size.
func (o Options) Validate() error {
	switch {
	case o.Spares < 0:
		return fmt.Errorf("%w: negative Spares", ErrOptions)
	case o.Disable&^AllBlocks != 0:
		return fmt.Errorf("%w: unknown blocks %#x in Disable", ErrOptions, uint8(o.Disable&^AllBlocks))
	case o.Timeout < 0 || o.KeepaliveInterval < 0:
		return fmt.Errorf("%w: negative Timeout or KeepaliveInterval", ErrOptions)
	case o.Keepalive != nil && !o.runs(BlockLocations):
		return fmt.Errorf("%w: Keepalive needs the locations block", ErrOptions)
	case o.OnTerminate != nil && !o.runs(BlockDialogs):
		return fmt.Errorf("%w: OnTerminate needs the dialog block", ErrOptions)
	}
	for name, l := range o.Limits {
		if name == "" || l.Rate < 0 || l.Burst < 0 {
			return fmt.Errorf("%w: limit %q %+v", ErrOptions, name, l)
		}
	}
	if o.DefaultLimit.Rate < 0 || o.DefaultLimit.Burst < 0 {
		return fmt.Errorf("%w: DefaultLimit %+v", ErrOptions, o.DefaultLimit)
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range o.VIPs {
		if !p.IsValid() || seen[p] {
			return fmt.Errorf("%w: VIP %v invalid or listed twice", ErrOptions, p)
		}
		seen[p] = true
	}
	return nil
}

// runs reports whether block b is enabled.
// validFor adds the checks that depend on the number of nodes.
func (o Options) validFor(n int) error {
	switch {
	case n < 1 || n > 64:
		return fmt.Errorf("%w: %d nodes, want 1 to 64", ErrOptions, n)
	case o.Spares >= n:
		return fmt.Errorf("%w: %d spares of %d nodes leaves no active node", ErrOptions, o.Spares, n)
	}
	return o.Validate()
}

func (o Options) runs(b Blocks) bool { return o.Disable&b == 0 }

func (o Options) timeout() time.Duration {
	if o.Timeout == 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (o Options) vips() []vip.VIP {
	pfx := o.VIPs
	if len(pfx) == 0 {
		pfx = []netip.Prefix{DefaultVIP}
	}
	out := make([]vip.VIP, len(pfx))
	for i, p := range pfx {
		out[i] = vip.VIP{Prefix: p, Interface: "eth0"}
	}
	return out
}
