package siphatest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/usrloc"
	"github.com/sipha/sipha/vip"
	"github.com/sipha/sipha/vip/viptest"
)

// Node is one running incarnation of a node: its transport, its ownership
// node and the blocks Options enabled (nil fields for the others). Kill
// stops it for good; Restart makes a new Node with the same ID, data
// directory and CDR spool, so fetch it again with Cluster.Node.
type Node struct {
	ID cluster.NodeID
	// Addr is the node's cluster address ("n1:7946" in memory, a
	// 127.0.0.1 port with Loopback).
	Addr      string
	Transport *cluster.TCP
	Ownership *raftowner.Node
	// Now is the node's clock (its host's skewable clock in memory).
	Now         func() time.Time
	Locations   *Locations
	Dialogs     *dialog.Tracker
	Limiter     *ratelimit.Limiter
	Partitioner *partition.Partitioner
	VIPs        *vip.Manager
	// VIPBackend is this node's recording fake of the address work; the
	// cluster's VIPLog sees every node's.
	VIPBackend *viptest.Backend
	CDR        *cdr.Poster

	crashed atomic.Bool // set by Kill (and after Stop): the fake backend stops acting
	stops   []func()    // what to close, in start order
}

// Locations is the usrloc block of a node: the replicated store, the
// registrar handler writing to it (srv.OnRegister(n.Locations.Registrar.Handle))
// and, with Options.Keepalive, the NAT keepalive pinger.
type Locations struct {
	Store      *usrloc.Store
	Replicator *usrloc.Replicator
	Registrar  *usrloc.Registrar
	Pinger     *usrloc.Pinger
}

// Running reports whether the node has not been killed or stopped.
func (n *Node) Running() bool { return !n.crashed.Load() }

// configs builds a node's block configurations; first says the whole
// cluster starts empty (no node has state to sync from).
func (c *Cluster) configs(id cluster.NodeID, first bool) *Configs {
	addr := c.addrs[id]
	var peers []cluster.Peer
	var rpeers []raftowner.Peer
	for _, other := range c.ids {
		rpeers = append(rpeers, raftowner.Peer{ID: other, Addr: c.addrs[other]})
		if other != id {
			peers = append(peers, cluster.Peer{ID: other, Addr: c.addrs[other]})
		}
	}
	role := raftowner.RoleNode
	if c.spare[id] {
		role = raftowner.RoleSpare
	}
	dir := filepath.Join(c.dir, string(id))
	cf := &Configs{
		Cluster:    cluster.Config{ID: id, Listen: addr, Peers: peers, Secret: c.secret},
		Ownership:  raftowner.Config{ID: id, Addr: addr, Role: role, DataDir: filepath.Join(dir, "raft"), Peers: rpeers},
		Store:      usrloc.Config{Node: id},
		Replicator: usrloc.ReplicatorConfig{NoJoin: first, AntiEntropyInterval: 2 * time.Second},
		Pinger:     usrloc.PingerConfig{Interval: c.opts.KeepaliveInterval},
		Dialog:     dialog.Config{SyncRetry: 100 * time.Millisecond},
		Limiter:    ratelimit.Config{Pipes: c.opts.Limits, Default: c.opts.DefaultLimit},
		Partition:  partition.Config{},
		VIP: vip.Config{VIPs: c.opts.vips(), Lifetime: vipLifetime,
			Announce: vip.Announce{SecondBurst: -1}},
	}
	if c.opts.runs(BlockVIPs) {
		// A killed holder's address stays up until its kernel lifetime
		// lapses (+1 s of kernel timer granularity): only a reassignment
		// delay beyond that keeps a crash free of overlap (see package vip).
		cf.Ownership.ReassignDelay = vipLifetime + time.Second
	}
	if c.collector != nil {
		cf.CDR = cdr.Config{Endpoints: []cdr.Endpoint{{URL: c.collector.URL}}, SpoolDir: filepath.Join(dir, "cdr"),
			Format: cdr.FormatNDJSON, Timeout: 2 * time.Second, BackoffBase: 10 * time.Millisecond,
			BackoffMax: 200 * time.Millisecond, BreakerCooldown: 100 * time.Millisecond, BreakerMaxCooldown: time.Second}
	}
	if c.opts.Tune != nil {
		c.opts.Tune(id, cf)
	}
	// Wiring comes after Tune: it is the harness's job, not the test's.
	log := c.log.With("node", string(id))
	now := time.Now
	if c.net != nil {
		host := c.net.Host(string(id))
		cf.Cluster.Network, now = host, host.Now
	}
	cf.Cluster.Now, cf.Cluster.Logger = now, log
	cf.Ownership.Now, cf.Ownership.Logger = now, log
	cf.Store.Now, cf.Store.Logger = now, log
	cf.Replicator.Now, cf.Replicator.Logger = now, log
	cf.Registrar.Now, cf.Registrar.Logger = now, log
	cf.Pinger.Logger = log
	if cf.Pinger.Interval == 0 {
		cf.Pinger.Interval = 200 * time.Millisecond
	}
	cf.Dialog.Now, cf.Dialog.Logger = now, log
	cf.Limiter.Now, cf.Limiter.Logger = now, log
	cf.Partition.Logger = log
	cf.VIP.Now, cf.VIP.Logger = now, log
	cf.VIP.Hook = c.vipLog.Hook(string(id), cf.VIP.Hook)
	cf.CDR.Now, cf.CDR.Logger = now, log
	return cf
}

// startCore starts a node's transport and ownership node: what every node
// needs before any block can start (blocks register ownership resources,
// which takes a leader, which takes a quorum of started nodes).
func (c *Cluster) startCore(cf *Configs) (*Node, error) {
	n := &Node{ID: cf.Cluster.ID, Addr: cf.Cluster.Listen, Now: cf.Cluster.Now}
	tcp, err := cluster.NewTCP(context.Background(), cf.Cluster)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	n.Transport = tcp
	n.stops = append(n.stops, func() { tcp.Close() })
	rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
	if err != nil {
		n.stop()
		return nil, fmt.Errorf("raft transport: %w", err)
	}
	if n.Ownership, err = raftowner.New(tcp, rt, cf.Ownership); err != nil {
		n.stop()
		return nil, fmt.Errorf("ownership: %w", err)
	}
	n.stops = append(n.stops, func() { n.Ownership.Close() })
	return n, nil
}

// startBlocks starts the enabled blocks on a node whose core runs. On error
// the node is stopped.
func (c *Cluster) startBlocks(ctx context.Context, n *Node, cf *Configs) (err error) {
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	o := c.opts
	if o.runs(BlockLocations) {
		l := &Locations{}
		if l.Store, err = usrloc.New(cf.Store); err != nil {
			return fmt.Errorf("usrloc store: %w", err)
		}
		n.stops = append(n.stops, func() { l.Store.Close() })
		if l.Replicator, err = usrloc.NewReplicator(l.Store, n.Transport, cf.Replicator); err != nil {
			return fmt.Errorf("usrloc replicator: %w", err)
		}
		n.stops = append(n.stops, func() { l.Replicator.Close() })
		if l.Registrar, err = usrloc.NewRegistrar(l.Store, cf.Registrar); err != nil {
			return fmt.Errorf("usrloc registrar: %w", err)
		}
		if ka := o.Keepalive; ka != nil {
			cf.Pinger.Owner = usrloc.ManagerOwner(n.Ownership, "")
			cf.Pinger.Send = func(ctx context.Context, b usrloc.Binding) error { return ka(ctx, n.ID, b) }
			if l.Pinger, err = usrloc.NewPinger(l.Store, cf.Pinger); err != nil {
				return fmt.Errorf("usrloc pinger: %w", err)
			}
			n.stops = append(n.stops, func() { l.Pinger.Close() })
		}
		n.Locations = l
	}
	// The poster starts before the dialog tracker and closes after it: a
	// terminate hook (Options.OnTerminate) may post CDRs through it.
	if c.collector != nil {
		if n.CDR, err = cdr.New(cf.CDR); err != nil {
			return fmt.Errorf("cdr: %w", err)
		}
		n.stops = append(n.stops, func() { n.CDR.Close() })
	}
	if o.runs(BlockDialogs) {
		cf.Dialog.Transport, cf.Dialog.Ownership = n.Transport, n.Ownership
		if o.OnTerminate != nil {
			hook, stop := o.OnTerminate(n)
			cf.Dialog.OnTerminate = hook
			if stop != nil {
				n.stops = append(n.stops, stop)
			}
		}
		if n.Dialogs, err = dialog.New(cf.Dialog); err != nil {
			return fmt.Errorf("dialog: %w", err)
		}
		n.stops = append(n.stops, func() { n.Dialogs.Close() })
	}
	if o.runs(BlockLimiter) {
		cf.Limiter.Transport = n.Transport
		if n.Limiter, err = ratelimit.New(cf.Limiter); err != nil {
			return fmt.Errorf("ratelimit: %w", err)
		}
		n.stops = append(n.stops, func() { n.Limiter.Close() })
	}
	if o.runs(BlockPartitions) {
		if n.Partitioner, err = partition.New(n.Ownership, nil, cf.Partition); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		n.stops = append(n.stops, func() { n.Partitioner.Close() })
	}
	if o.runs(BlockVIPs) {
		n.VIPBackend = c.vipLog.Backend(string(n.ID))
		if n.VIPs, err = vip.New(ctx, n.Ownership, crashable{n.VIPBackend, &n.crashed}, cf.VIP); err != nil {
			return fmt.Errorf("vip: %w", err)
		}
		n.stops = append(n.stops, func() { n.VIPs.Close() })
	}
	return nil
}

// stop closes what the node started, last started first: blocks before the
// ownership node they watch, the transport last.
func (n *Node) stop() {
	for i := len(n.stops) - 1; i >= 0; i-- {
		n.stops[i]()
	}
	n.stops = nil
}

// crashable is a node's VIP backend that stops acting once the node was
// killed: a crashed process removes no address, so the fake keeps it up
// until its lifetime lapses, as the kernel would.
type crashable struct {
	vip.Backend
	dead *atomic.Bool
}

func (b crashable) Add(ctx context.Context, v vip.VIP, lifetime time.Duration) error {
	if b.dead.Load() {
		return nil
	}
	return b.Backend.Add(ctx, v, lifetime)
}

func (b crashable) Remove(ctx context.Context, v vip.VIP) error {
	if b.dead.Load() {
		return nil
	}
	return b.Backend.Remove(ctx, v)
}

func (b crashable) Announce(ctx context.Context, v vip.VIP) error {
	if b.dead.Load() {
		return nil
	}
	return b.Backend.Announce(ctx, v)
}
