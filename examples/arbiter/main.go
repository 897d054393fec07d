// Command arbiter runs a Raft-only sipha node: it votes in the ownership
// cluster and owns nothing, so two SIP nodes plus one arbiter keep a
// quorum when any one of the three fails (the "decision box" of MySQL
// Cluster). It needs no SIP stack; any small machine or VM in a third
// failure domain will do.
//
//	arbiter -id arb -listen 10.0.0.3:7946 -data /var/lib/sipha-arbiter \
//	    -peers sip1=10.0.0.1:7946,sip2=10.0.0.2:7946,arb=10.0.0.3:7946 \
//	    -secret-file /etc/sipha/secret
//
// SIGINT or SIGTERM stops it gracefully (leadership is handed to another
// voter first).
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

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/raftowner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "arbiter:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	id, listen, advertise, peers, data, secretFile, profile string
	insecure                                                bool
}

func parse(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("arbiter", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.id, "id", "", "this node's ID, unique in the cluster (required)")
	fs.StringVar(&o.listen, "listen", "", "cluster port to listen on, host:port (required); Raft shares it")
	fs.StringVar(&o.advertise, "advertise", "", "address peers dial, host:port (default: the listen address)")
	fs.StringVar(&o.peers, "peers", "", "every voter of the cluster, this one included, as id=host:port,... (required; the same list on every node)")
	fs.StringVar(&o.data, "data", "", "data directory for the Raft log and snapshots (required); keep it across restarts")
	fs.StringVar(&o.secretFile, "secret-file", "", "file holding the shared cluster secret (at least 16 bytes); or set SIPHA_SECRET")
	fs.StringVar(&o.profile, "profile", "lan", "timing profile: lan (heartbeat 100 ms) or wan (1 s); must match the other nodes")
	fs.BoolVar(&o.insecure, "insecure", false, "run without authentication (tests and demos only)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: arbiter -id ID -listen HOST:PORT -peers ID=HOST:PORT,... -data DIR [flags]\n\n"+
			"Runs a Raft-only node of a sipha ownership cluster: it votes, owns nothing.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for name, v := range map[string]string{"id": o.id, "listen": o.listen, "peers": o.peers, "data": o.data} {
		if v == "" {
			return o, fmt.Errorf("-%s is required (see -h)", name)
		}
	}
	return o, nil
}

func parsePeers(s string) ([]raftowner.Peer, error) {
	var peers []raftowner.Peer
	for _, item := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("bad peer %q: want id=host:port", item)
		}
		peers = append(peers, raftowner.Peer{ID: cluster.NodeID(id), Addr: addr})
	}
	return peers, nil
}

// run runs the arbiter until ctx ends. ready, if not nil, gets the node
// once it runs (for tests).
func run(ctx context.Context, args []string, out io.Writer, ready func(*raftowner.Node)) error {
	o, err := parse(args, out)
	if err != nil {
		return err
	}
	peers, err := parsePeers(o.peers)
	if err != nil {
		return err
	}
	var secret []byte
	switch {
	case o.secretFile != "":
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return err
		}
		secret = []byte(strings.TrimSpace(string(b)))
	case os.Getenv("SIPHA_SECRET") != "":
		secret = []byte(os.Getenv("SIPHA_SECRET"))
	}
	var profile raftowner.Profile
	switch o.profile {
	case "lan":
	case "wan":
		profile = raftowner.WAN
	default:
		return fmt.Errorf("-profile %q: want lan or wan", o.profile)
	}
	log := slog.New(slog.NewTextHandler(out, nil)).With("node", o.id)
	id := cluster.NodeID(o.id)
	var cpeers []cluster.Peer
	for _, p := range peers {
		if p.ID != id {
			cpeers = append(cpeers, cluster.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	tcp, err := cluster.NewTCP(ctx, cluster.Config{ID: id, Listen: o.listen, Advertise: o.advertise,
		Peers: cpeers, Secret: secret, Insecure: o.insecure, Logger: log})
	if err != nil {
		return err
	}
	defer tcp.Close()
	rt, err := raftowner.NewStreamTransport(tcp, 0, nil)
	if err != nil {
		return err
	}
	node, err := raftowner.New(tcp, rt, raftowner.Config{ID: id, Addr: tcp.Addr(), Role: raftowner.RoleArbiter,
		DataDir: o.data, Peers: peers, Profile: profile, Logger: log})
	if err != nil {
		return err
	}
	log.Info("arbiter running", "addr", tcp.Addr(), "peers", len(peers))
	if ready != nil {
		ready(node)
	}
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	leader := cluster.NodeID("")
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return node.Shutdown(sctx)
		case <-t.C:
			if l := node.Leader(); l != leader {
				leader = l
				log.Info("raft leader", "leader", l)
			}
		}
	}
}
