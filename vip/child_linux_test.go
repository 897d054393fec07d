package vip_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/vip"
)

// childConfig is what the test passes to a node process in childEnv.
type childConfig struct {
	ID      cluster.NodeID
	Listen  string // host:port on the node's own address
	Peers   []raftowner.Peer
	Arbiter bool
	DataDir string
	VIP     string // prefix, e.g. 198.51.100.100/24
	VIPs    []cluster.NodeID
	// Lifetime and RenewEvery of the VIP's address.
	Lifetime, RenewEvery time.Duration
	// Heartbeat and Lease override raftowner's LAN profile when set
	// (MaxPause follows as Lease/4).
	Heartbeat, Lease time.Duration
	// ResponderOnly runs just the UDP responder (beside keepalived).
	ResponderOnly bool
}

// childMain runs one node: the cluster transport over TCP, the Raft
// ownership node, and, unless it is the arbiter, a vip.Manager with the
// netlink backend and a UDP responder bound to the VIP that answers with
// the node's ID. It prints "ready", then "up <epoch>" and "down <epoch>",
// on stdout, and runs until SIGTERM (or SIGKILL).
func childMain() int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	if err := runChild(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func runChild(cfg childConfig) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	out := bufio.NewWriter(os.Stdout)
	var sayMu sync.Mutex
	say := func(format string, a ...any) {
		sayMu.Lock()
		defer sayMu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	if cfg.ResponderOnly {
		pfx, err := netip.ParsePrefix(cfg.VIP)
		if err != nil {
			return err
		}
		stopUDP, err := answerUDP(netip.AddrPortFrom(pfx.Addr(), 5060), string(cfg.ID))
		if err != nil {
			return err
		}
		defer stopUDP()
		say("ready")
		<-ctx.Done()
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", cfg.ID)
	var peers []cluster.Peer
	for _, p := range cfg.Peers {
		if p.ID != cfg.ID {
			peers = append(peers, cluster.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	tcp, err := cluster.NewTCP(ctx, cluster.Config{ID: cfg.ID, Listen: cfg.Listen, Peers: peers,
		Secret: []byte("vip-namespace-test-secret-0123456"), Logger: log})
	if err != nil {
		return err
	}
	defer tcp.Close()
	rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
	if err != nil {
		return err
	}
	role := raftowner.RoleNode
	if cfg.Arbiter {
		role = raftowner.RoleArbiter
	}
	node, err := raftowner.New(tcp, rt, raftowner.Config{ID: cfg.ID, Addr: tcp.Addr(), Role: role,
		DataDir: cfg.DataDir, Peers: cfg.Peers, Logger: log,
		HeartbeatTimeout: cfg.Heartbeat, Lease: cfg.Lease, MaxPause: cfg.Lease / 4})
	if err != nil {
		return err
	}
	defer node.Close()
	// Leader changes as this node sees them, for the comparison's breakdown.
	go func() {
		last := cluster.NodeID("?")
		for ctx.Err() == nil {
			if l := node.Leader(); l != last {
				last = l
				say("leader %s", l)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	if cfg.Arbiter {
		say("ready")
		<-ctx.Done()
		return nil
	}
	pfx, err := netip.ParsePrefix(cfg.VIP)
	if err != nil {
		return err
	}
	stopUDP, err := answerUDP(netip.AddrPortFrom(pfx.Addr(), 5060), string(cfg.ID))
	if err != nil {
		return err
	}
	defer stopUDP()
	be, err := vip.NewNetlink()
	if err != nil {
		return err
	}
	defer be.Close()
	v := vip.VIP{Prefix: pfx, Interface: "eth0", Candidates: cfg.VIPs}
	m, err := vip.New(ctx, node, be, vip.Config{
		VIPs:     []vip.VIP{v},
		Lifetime: cfg.Lifetime, RenewEvery: cfg.RenewEvery, Logger: log,
		Hook: func(c vip.Change) {
			if c.Up {
				say("up %d", c.Epoch)
			} else {
				say("down %d", c.Epoch)
			}
		}})
	if err != nil {
		return err
	}
	defer m.Close()
	// When the ownership layer gives this node the VIP and when its probe
	// found the address in use: the takeover's share that is the probe's.
	go func() {
		var held bool
		var conflicts uint64
		for ctx.Err() == nil {
			if _, h := node.Held(v.Resource()); h != held {
				held = h
				say("held %v", h)
			}
			if n := m.Stats().ProbeConflicts; n != conflicts {
				conflicts = n
				say("probeconflicts %d", n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for !node.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	say("ready")
	<-ctx.Done()
	return nil
}

// answerUDP answers every datagram to addr with id. The socket is bound
// to the VIP itself with IP_FREEBIND (IPV6_FREEBIND), as a SIP server on a
// floating address does, so replies leave from the VIP whichever node
// holds it.
func answerUDP(addr netip.AddrPort, id string) (stop func(), err error) {
	network, level, opt := "udp4", unix.IPPROTO_IP, unix.IP_FREEBIND
	if addr.Addr().Is6() {
		network, level, opt = "udp6", unix.IPPROTO_IPV6, unix.IPV6_FREEBIND
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), level, opt, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(id+" "), buf[:n]...), from)
		}
	}()
	return func() { pc.Close(); <-done }, nil
}
