// Command sipdig prints where a SIP client should send a request for a
// SIP or SIPS URI, in the order RFC 3263 says to try the targets: one per
// line as TRANSPORT HOST PORT IP. With -v it first prints the DNS records
// it followed.
//
//	go run ./examples/sipdig [-server host:port] [-v] sip:example.com
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sipha/sipha/dnssrv"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: sipdig [flags] sip:URI

Prints the targets of a SIP or SIPS URI per RFC 3263 (NAPTR, SRV with
RFC 2782 weights, A/AAAA), one per line: TRANSPORT HOST PORT IP.
SRV targets of equal priority come in a weighted random order.

flags:
`

// run is main without the process: it returns the exit code (0 found,
// 1 resolution failed, 2 bad usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sipdig", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "DNS server `host:port` (comma-separated for several); default: /etc/resolv.conf")
	verbose := fs.Bool("v", false, "also print the DNS records followed")
	transports := fs.String("transports", "udp,tcp,tls", "transports the client supports, preferred first (udp,tcp,tls,sctp,tls-sctp,ws,wss)")
	family := fs.String("family", "prefer4", "address families: prefer4, prefer6, 4 or 6")
	noNAPTR := fs.Bool("no-naptr", false, "skip NAPTR and start at SRV")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of one DNS query")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cfg := dnssrv.Config{Timeout: *timeout, IgnoreNAPTR: *noNAPTR}
	if *server != "" {
		cfg.Servers = strings.Split(*server, ",")
	}
	for _, name := range strings.Split(*transports, ",") {
		t, err := dnssrv.ParseTransport(strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintln(stderr, "sipdig:", err)
			return 2
		}
		cfg.Transports = append(cfg.Transports, t)
	}
	switch *family {
	case "prefer4":
		cfg.Family = dnssrv.PreferIPv4
	case "prefer6":
		cfg.Family = dnssrv.PreferIPv6
	case "4":
		cfg.Family = dnssrv.IPv4Only
	case "6":
		cfg.Family = dnssrv.IPv6Only
	default:
		fmt.Fprintf(stderr, "sipdig: unknown -family %q\n", *family)
		return 2
	}
	u, err := dnssrv.ParseURI(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "sipdig:", err)
		return 2
	}
	r, err := dnssrv.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "sipdig:", err)
		return 2
	}
	defer r.Close()

	ex, err := r.Explain(ctx, u)
	if *verbose && ex != nil {
		for _, rr := range ex.Records {
			fmt.Fprintln(stdout, ";", strings.ReplaceAll(rr.String(), "\t", " "))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "sipdig:", err)
		if errors.Is(err, dnssrv.ErrBadURI) || errors.Is(err, dnssrv.ErrUnsupported) {
			return 2
		}
		return 1
	}
	for _, t := range ex.Targets {
		fmt.Fprintln(stdout, t)
	}
	return 0
}
