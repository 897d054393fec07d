// Command registrar is a high-availability SIP registrar and record-routing
// proxy built from sipha's blocks (package examples/registrar/proxy): run
// three of them and any one can die without losing registrations, call counts,
// the CPS limit or a CDR.
//
//	registrar -h    # flags and an example of a 3-node start
//
// SIGINT or SIGTERM stops it gracefully: SIP stops, its resources are handed
// to the other nodes, undelivered CDRs stay in the spool for the next start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/examples/registrar/proxy"
	"github.com/sipha/sipha/vip"
)

const usageText = `Usage: registrar -id ID -sip ADDR -cluster ADDR -peers ID=HOST:PORT,... -data DIR [flags]

An HA SIP registrar and proxy: REGISTER is stored and replicated to every node,
INVITE is limited cluster-wide (-cps), looked up and forwarded with
Record-Route; every ended call posts a CDR to the -cdr-url collectors.

A 3-node cluster on one host (run each line in its own shell):

  export SIPHA_SECRET=change-me-to-16+-bytes
  registrar -id a -sip 127.0.0.1:5060 -cluster 127.0.0.1:7946 -http 127.0.0.1:9090 \
    -peers b=127.0.0.1:7947,c=127.0.0.1:7948 -data /var/lib/sipha/a -cps 100 -cdr-url http://127.0.0.1:8080/cdr
  registrar -id b -sip 127.0.0.1:5061 -cluster 127.0.0.1:7947 -http 127.0.0.1:9091 \
    -peers a=127.0.0.1:7946,c=127.0.0.1:7948 -data /var/lib/sipha/b -cps 100 -cdr-url http://127.0.0.1:8080/cdr
  registrar -id c -sip 127.0.0.1:5062 -cluster 127.0.0.1:7948 -http 127.0.0.1:9092 \
    -peers a=127.0.0.1:7946,b=127.0.0.1:7947 -data /var/lib/sipha/c -cps 100 -cdr-url http://127.0.0.1:8080/cdr

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the parsed flags.
type options struct {
	id, sip, advertise, clusterAddr, peers string
	data, httpAddr                         string
	vipAddr, iface, secret, domain         string
	cps                                    float64
	keepalive                              time.Duration
	cdrURLs                                []string
	insecure, verbose, untracked           bool
}

func parse(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("registrar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.id, "id", "", "this node's ID, stable across restarts (required)")
	fs.StringVar(&o.sip, "sip", "0.0.0.0:5060", "SIP listen address, served on UDP and TCP")
	fs.StringVar(&o.advertise, "advertise", "", "host:port in Record-Route; required when -sip is 0.0.0.0 (default with -vip: VIP:port)")
	fs.StringVar(&o.clusterAddr, "cluster", "", "cluster listen address: transport and Raft share it (required)")
	fs.StringVar(&o.peers, "peers", "", "the other nodes, id=host:port,... (their -cluster addresses)")
	fs.StringVar(&o.data, "data", "", "data directory: raft/, cdr-spool/, usrloc.db (required)")
	fs.Float64Var(&o.cps, "cps", 0, "cluster-wide limit of new calls per second; 0: none")
	fs.Func("cdr-url", "CDR collector URL; repeat for failover order", func(s string) error {
		o.cdrURLs = append(o.cdrURLs, s)
		return nil
	})
	fs.StringVar(&o.httpAddr, "http", "", "address of /healthz and /metrics; empty: none")
	fs.StringVar(&o.vipAddr, "vip", "", "floating address ADDR/PREFIX held by one node (needs root and -iface)")
	fs.StringVar(&o.iface, "iface", "", "interface that carries -vip")
	fs.StringVar(&o.secret, "secret", "", "cluster HMAC secret, at least 16 bytes (default $SIPHA_SECRET)")
	fs.BoolVar(&o.insecure, "insecure", false, "run the cluster port without authentication (tests only)")
	fs.StringVar(&o.domain, "domain", "", "single-domain mode: look every user up as user@DOMAIN")
	fs.DurationVar(&o.keepalive, "keepalive", 0, "NAT keepalive OPTIONS interval to UDP bindings of this node's socket; 0: none")
	fs.BoolVar(&o.untracked, "no-call-tracking", false, "forward calls without dialog tracking, profiles, CDRs or a CPS limit (a benchmark baseline)")
	fs.BoolVar(&o.verbose, "v", false, "log at debug level")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.id == "" || o.clusterAddr == "" || o.data == "" {
		return nil, errors.New("-id, -cluster and -data are required")
	}
	if o.secret == "" {
		o.secret = os.Getenv("SIPHA_SECRET")
	}
	if o.secret == "" && !o.insecure {
		return nil, errors.New("-secret (or $SIPHA_SECRET) is required, or -insecure")
	}
	if o.untracked && (o.cps > 0 || len(o.cdrURLs) > 0) {
		return nil, errors.New("-no-call-tracking leaves nothing to apply -cps or -cdr-url to")
	}
	if (o.vipAddr == "") != (o.iface == "") {
		return nil, errors.New("-vip and -iface go together")
	}
	return &o, nil
}

// parsePeers reads "id=host:port,...".
func parsePeers(s, self string) ([]cluster.Peer, error) {
	var out []cluster.Peer
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, addr, ok := strings.Cut(f, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q: want id=host:port", f)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: %v", f, err)
		}
		if id == self {
			return nil, fmt.Errorf("peer %q: that is this node's own ID", f)
		}
		out = append(out, cluster.Peer{ID: cluster.NodeID(id), Addr: addr})
	}
	return out, nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "registrar:", err)
		return 2
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("node", o.id)
	if err := serve(ctx, o, log, stdout); err != nil {
		fmt.Fprintln(stderr, "registrar:", err)
		return 1
	}
	return 0
}

// serve starts the node, reports its addresses on stdout, and runs until
// ctx ends.
func serve(ctx context.Context, o *options, log *slog.Logger, stdout io.Writer) error {
	peers, err := parsePeers(o.peers, o.id)
	if err != nil {
		return err
	}
	ready := false
	defer func() { // runs last, after every block is closed
		if ready {
			fmt.Fprintf(stdout, "registrar %s stopped\n", o.id)
		}
	}()
	cfg := proxy.StackConfig{ID: cluster.NodeID(o.id), ClusterAddr: o.clusterAddr, Peers: peers,
		Insecure: o.insecure && o.secret == "", DataDir: o.data, CPS: o.cps,
		CDRURLs: o.cdrURLs, Domain: o.domain, Logger: log}
	if o.secret != "" {
		cfg.Secret = []byte(o.secret)
	}
	pcfg := proxy.Config{Listen: o.sip, Advertise: o.advertise, Domain: o.domain, KeepaliveInterval: o.keepalive, KeepaliveMaxFailures: 3,
		NoCallTracking: o.untracked, Logger: log}
	if o.vipAddr != "" {
		pfx, err := netip.ParsePrefix(o.vipAddr)
		if err != nil {
			return fmt.Errorf("-vip: %v", err)
		}
		be, err := vip.NewNetlink()
		if err != nil {
			return fmt.Errorf("-vip needs root (CAP_NET_ADMIN, CAP_NET_RAW): %w", err)
		}
		defer be.Close()
		cfg.VIP, cfg.VIPBackend = vip.VIP{Prefix: pfx, Interface: o.iface}, be
		if _, port, err := net.SplitHostPort(o.sip); err == nil && o.advertise == "" {
			pcfg.Advertise = net.JoinHostPort(pfx.Addr().String(), port)
		}
	}
	st, err := proxy.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	p, err := proxy.New(st.Blocks(), pcfg)
	if err != nil {
		return err
	}
	defer p.Close()
	httpAddr := "-"
	if o.httpAddr != "" {
		ln, err := net.Listen("tcp", o.httpAddr)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: p.HTTPHandler(), ReadHeaderTimeout: 5 * time.Second}
		done := make(chan struct{})
		go func() { defer close(done); hs.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			hs.Shutdown(sctx)
			<-done
		}()
		httpAddr = ln.Addr().String()
	}
	ready = true
	fmt.Fprintf(stdout, "registrar %s ready: sip %s (udp+tcp), cluster %s, http %s\n", o.id, p.Addr(), st.TCP.Addr(), httpAddr)
	<-ctx.Done()
	log.Info("registrar: stopping")
	return nil
}
