package vip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// Sentinel errors of the vip package.
var (
	ErrConfig   = errors.New("vip: invalid config")
	ErrClosed   = errors.New("vip: closed")
	ErrNoHealth = errors.New("vip: ownership manager cannot take health reports")
	ErrBackend  = errors.New("vip: backend failed")
)

// VIP is one floating address and where it may live.
type VIP struct {
	// Prefix is the address with the prefix length it gets on the
	// interface, e.g. 198.51.100.100/24 or 2001:db8::100/64.
	Prefix netip.Prefix
	// Interface is the local interface that carries it, e.g. "eth0".
	Interface string
	// Candidates are the nodes that may hold it, best first (the ownership
	// Spec's Candidates). Empty means every node.
	Candidates []cluster.NodeID
	// Policy is Sticky (keepalived nopreempt, the zero value) or
	// Preferred (move back to the first candidate after HoldDown).
	Policy   ownership.Policy
	HoldDown time.Duration
}

// Resource is the name of the ownership resource that decides who holds v,
// e.g. "vip/198.51.100.100".
func (v VIP) Resource() string { return ownership.VIPResource(v.Prefix.Addr().String()) }

func (v VIP) String() string { return v.Prefix.String() + "@" + v.Interface }

// Announce configures the gratuitous ARPs (IPv4) or unsolicited neighbour
// advertisements (IPv6) sent when this node takes a VIP. The defaults are
// keepalived's: a burst of 5 back to back, a second burst 5 s later, no
// periodic refresh.
type Announce struct {
	// Count is the number of frames per burst. Zero means 5; negative
	// sends none.
	Count int
	// Interval spaces the frames of a burst; zero sends them back to back
	// (keepalived vrrp_garp_interval 0).
	Interval time.Duration
	// SecondBurst is the delay of the second burst after taking the VIP
	// (keepalived vrrp_garp_master_delay). Zero means 5 s; negative
	// disables it.
	SecondBurst time.Duration
	// Refresh repeats a burst this often while the VIP is held (keepalived
	// vrrp_garp_master_refresh), for switches that age their tables fast.
	// Zero disables it.
	Refresh time.Duration
}

// Config configures a Manager. The zero value of each field means its
// default; VIPs is required.
type Config struct {
	VIPs []VIP
	// Lifetime is the kernel valid lifetime (valid_lft) of an address the
	// holder puts up. The holder renews it every RenewEvery while the
	// ownership layer says it holds the VIP, so a process that is killed
	// or hangs leaves an address that disappears by itself within
	// Lifetime (+1 s: the kernel counts lifetimes in whole seconds and
	// checks them on a one-second timer). Default 2 s; at least 1 s.
	Lifetime time.Duration
	// RenewEvery is how often the holder checks that it still holds each
	// VIP and renews its lifetime. Default Lifetime/4; at most
	// Lifetime/2. Lost events act at once; this is the backstop.
	RenewEvery time.Duration
	// Announce configures gratuitous ARP / unsolicited NA.
	Announce Announce
	// ProbeWait is how long a node that is about to take a VIP listens for
	// another host answering a probe for it (backends with Prober: Netlink
	// sends an ARP probe for IPv4, a duplicate address detection neighbour
	// solicitation for IPv6). While one answers, the node waits and
	// probes again: the previous holder's process was killed on a live
	// host and its kernel keeps the address until valid_lft runs out. After
	// ceil(Lifetime)+2 s of answers it adds the address anyway and logs an
	// error, since no stale copy of ours lives that long: another machine
	// is using the address. Zero means 40 ms; negative disables probing.
	ProbeWait time.Duration
	// BackendTimeout bounds one backend call. Default 2 s.
	BackendTimeout time.Duration
	// Hook, if set, is told of every change after it happened: after the
	// address is up and the first announcement went out, and after the
	// address is removed (or has surely expired in the kernel when removal
	// keeps failing). Use it to start and stop what only the holder may do
	// (NAT keepalive pinging, binding sockets).
	//
	// Concurrency: Hook runs on one goroutine of the Manager, never
	// concurrently with itself, in the order of the changes. A slow Hook
	// delays later hooks but never the address work: an Up change may be
	// delivered after the address is gone again, so the hook can compare
	// the Change's Epoch with the next one. Close waits for it to return.
	Hook func(Change)
	// Checks are health checks with rise/fall counts (keepalived
	// vrrp_script). While any of them is failing this node reports itself
	// unhealthy to the ownership layer, which moves its VIPs to a healthy
	// candidate and gives it none. They need an ownership manager with
	// SetHealthy (HealthSetter).
	Checks []Check
	// Now is the clock for schedules and change times; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Change is one transition of a VIP on this node, for Config.Hook.
type Change struct {
	VIP VIP
	// Up is true when this node now holds the VIP, false when it has let
	// it go.
	Up    bool
	Epoch ownership.Epoch
	At    time.Time
}

func (cfg Config) withDefaults() Config {
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 2 * time.Second
	}
	if cfg.RenewEvery == 0 {
		cfg.RenewEvery = cfg.Lifetime / 4
	}
	if cfg.Announce.Count == 0 {
		cfg.Announce.Count = 5
	}
	if cfg.Announce.SecondBurst == 0 {
		cfg.Announce.SecondBurst = 5 * time.Second
	}
	if cfg.BackendTimeout == 0 {
		cfg.BackendTimeout = 2 * time.Second
	}
	if cfg.ProbeWait == 0 {
		cfg.ProbeWait = 40 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for i := range cfg.Checks {
		cfg.Checks[i] = cfg.Checks[i].withDefaults()
	}
	return cfg
}

// Validate checks the config after defaults are applied.
func (cfg Config) Validate() error {
	c := cfg.withDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case len(c.VIPs) == 0:
		return bad("no VIPs")
	case c.Lifetime < time.Second:
		return bad("Lifetime %v < 1s (the kernel counts whole seconds)", c.Lifetime)
	case c.RenewEvery <= 0 || c.RenewEvery > c.Lifetime/2:
		return bad("RenewEvery %v not in (0, Lifetime/2 = %v]", c.RenewEvery, c.Lifetime/2)
	case c.Announce.Interval < 0 || c.Announce.Refresh < 0:
		return bad("negative Announce.Interval or Announce.Refresh")
	case c.BackendTimeout < 0:
		return bad("negative BackendTimeout")
	case c.ProbeWait > c.BackendTimeout:
		return bad("ProbeWait %v > BackendTimeout %v", c.ProbeWait, c.BackendTimeout)
	}
	seen := map[string]bool{}
	for _, v := range c.VIPs {
		if !v.Prefix.IsValid() || v.Prefix.Addr().Zone() != "" || v.Prefix.Addr().Is4In6() {
			return bad("VIP %q: not an IPv4 or IPv6 prefix", v.Prefix)
		}
		if v.Interface == "" {
			return bad("VIP %s: no Interface", v.Prefix)
		}
		if seen[v.Resource()] {
			return bad("VIP %s listed twice", v.Prefix.Addr())
		}
		seen[v.Resource()] = true
		spec := ownership.Spec{Name: v.Resource(), Candidates: v.Candidates, Policy: v.Policy, HoldDown: v.HoldDown}
		if v.Policy == ownership.Placed {
			return bad("VIP %s: policy placed is not for VIPs", v.Prefix)
		}
		if err := spec.Validate(); err != nil {
			return fmt.Errorf("%w: VIP %s: %w", ErrConfig, v.Prefix, err)
		}
	}
	for _, ch := range c.Checks {
		if err := ch.validate(); err != nil {
			return err
		}
	}
	return nil
}
