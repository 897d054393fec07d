// Command regbench measures the highest REGISTER rate a registrar sustains
// and puts sipha side by side with Kamailio on the same machine, in the
// same run: (a) Kamailio as an in-memory registrar (usrloc db_mode 0, two
// UDP children), (b) examples/registrar alone, (c) a Kamailio pair
// replicating with dmq_usrloc, (d) a pair of sipha registrars.
//
// For each system and each rate (ascending) it starts the system afresh,
// drives sipp (Debian sip-tester) registering distinct users with Expires
// 3600 at that rate for -duration, and counts the rate as sustained when
// at least 99% of REGISTERs got a 200, none timed out, sipp kept the rate,
// and (for a pair) every registration reached both nodes. It prints a
// Markdown table with the highest sustained rate and the CPU-seconds the
// registrar processes spent per REGISTER at that rate.
//
//	go run ./examples/regbench                   # all four, 30 s per step
//	go run ./examples/regbench -systems a,b -duration 10s -rates 2000,4000
//
// It needs kamailio and sipp installed (apt-get install kamailio
// sip-tester) and listens on 127.0.0.1 only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	systems     []string
	rates       []int
	duration    time.Duration
	registrar   string
	countMetric string
	dir         string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("regbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	systems := fs.String("systems", "a,b,c,d", "systems to measure: a kamailio, b sipha, c kamailio dmq pair, d sipha pair")
	rates := fs.String("rates", "2000,4000,6000,8000,10000,12000,14000,16000,18000,20000,24000", "REGISTER/s steps, ascending")
	duration := fs.Duration("duration", 30*time.Second, "how long each rate is held")
	registrar := fs.String("registrar", "", "examples/registrar binary (default: go build it)")
	countMetric := fs.String("metric", "sipha_registrations", "the registrar's /metrics gauge of live bindings (one per user here)")
	keep := fs.Bool("keep", false, "keep the work directory (configs, logs, sipp stats)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg := config{duration: *duration, registrar: *registrar, countMetric: *countMetric}
	for _, s := range strings.Split(*systems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !strings.Contains("abcd", s) || len(s) != 1 {
				fmt.Fprintf(stderr, "regbench: unknown system %q\n", s)
				return 2
			}
			cfg.systems = append(cfg.systems, s)
		}
	}
	for _, r := range strings.Split(*rates, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			fmt.Fprintf(stderr, "regbench: bad rate %q\n", r)
			return 2
		}
		cfg.rates = append(cfg.rates, v)
	}
	dir, err := os.MkdirTemp("", "regbench")
	if err != nil {
		fmt.Fprintln(stderr, "regbench:", err)
		return 1
	}
	if *keep {
		fmt.Fprintln(stderr, "regbench: work directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	cfg.dir = dir
	rows, err := measureAll(ctx, &cfg, stderr) // a pointer: the registrar binary is built once
	printTable(stdout, rows, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "regbench:", err)
		return 1
	}
	return 0
}
