// Command regbench measures the highest REGISTER rate a registrar sustains
// and puts sipha side by side with Kamailio on the same machine, in the
// same run: (a) Kamailio as an in-memory registrar (usrloc db_mode 0, two
// UDP children), (b) examples/registrar alone, (c) a Kamailio pair
// replicating with dmq_usrloc, (d) a pair of sipha registrars.
//
// For each rate (ascending) and each system in turn (so that all of them
// meet the shared machine's load at nearly the same time; a system drops
// out at its first failure) it starts the system afresh, drives sipp (Debian sip-tester) registering distinct users with Expires
// 3600 at that rate for -duration, and counts the rate as sustained when
// at least 99% of REGISTERs got a 200, none timed out, sipp kept the rate,
// and (for a pair) every registration reached both nodes. It prints a
// Markdown table with the highest sustained rate and the CPU-seconds the
// registrar processes spent per REGISTER at that rate; -repeats runs it
// all again. Each step's log line on stderr carries the 1-minute load
// average.
//
//	go run ./examples/regbench                   # all four, 30 s per step
//	go run ./examples/regbench -systems a,b -duration 10s -rates 2000,4000
//
// It needs kamailio and sipp installed (apt-get install kamailio
// sip-tester) and listens on 127.0.0.1 only.
//
// With -calls it measures instead the call setup rate through
// examples/registrar with dialog tracking and the CPS limiter on (the limit
// far above the load) and off (-no-call-tracking): for each rate
// (ascending, -call-rates) and each mode in turn it starts a fresh
// registrar, registers 100 callees through it from the port a sipp UAS
// then answers on, and has a sipp UAC place short calls (INVITE, 180, 200,
// ACK, 100 ms, BYE, 200) through it for -duration. A rate counts when at
// least 99% of calls completed and none timed out. It prints the highest
// rate each mode sustained, the registrar's CPU per call and the ratio
// on/off of every run (-repeats).
//
//	go run ./examples/regbench -calls -repeats 3 -duration 20s
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
	callRates   []int
	repeats     int
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
	calls := fs.Bool("calls", false, "measure call setup rate with dialog tracking + CPS limiter on vs off instead")
	callRates := fs.String("call-rates", "200,300,400,500,600,700,800,900,1000,1100,1200,1300,1400,1500,1600,1800,2000", "calls/s steps for -calls, ascending")
	repeats := fs.Int("repeats", 1, "how many times to run the whole measurement")
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
	cfg := config{duration: *duration, registrar: *registrar, countMetric: *countMetric, repeats: *repeats}
	if cfg.repeats < 1 {
		fmt.Fprintln(stderr, "regbench: -repeats must be at least 1")
		return 2
	}
	for _, s := range strings.Split(*systems, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !strings.Contains("abcd", s) || len(s) != 1 {
				fmt.Fprintf(stderr, "regbench: unknown system %q\n", s)
				return 2
			}
			cfg.systems = append(cfg.systems, s)
		}
	}
	var err error
	if cfg.rates, err = parseRates(*rates); err == nil {
		cfg.callRates, err = parseRates(*callRates)
	}
	if err != nil {
		fmt.Fprintln(stderr, "regbench:", err)
		return 2
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
	if *calls {
		rows, err := measureCalls(ctx, &cfg, stderr) // a pointer: the registrar binary is built once
		printCalls(stdout, rows, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "regbench:", err)
			return 1
		}
		return 0
	}
	for run := 1; run <= cfg.repeats; run++ {
		if cfg.repeats > 1 {
			fmt.Fprintf(stdout, "run %d of %d: ", run, cfg.repeats)
		}
		rows, err := measureAll(ctx, &cfg, run, stderr)
		printTable(stdout, rows, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "regbench:", err)
			return 1
		}
		fmt.Fprintln(stdout)
	}
	return 0
}

// parseRates reads a comma-separated list of positive rates.
func parseRates(s string) ([]int, error) {
	var out []int
	for _, r := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("bad rate %q", r)
		}
		out = append(out, v)
	}
	return out, nil
}
