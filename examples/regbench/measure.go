package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// row is one system's result.
type row struct {
	system     string
	best       int           // highest sustained rate; 0 = none
	cpuPerReg  time.Duration // registrar CPU per REGISTER at best
	failedAt   int           // first rate not sustained; 0 = all were
	failReason string
}

// step is one rate held against one fresh system.
type step struct {
	res       loadResult
	cpu       time.Duration
	replicaOK bool
	counts    []int
}

// verdict says why a step does not count as sustained ("" = it does).
func (s step) verdict(rate int, d time.Duration) string {
	switch {
	case s.res.Sent == 0:
		return "sipp sent nothing"
	case s.res.Timeouts > 0:
		return fmt.Sprintf("%d timeouts", s.res.Timeouts)
	case s.res.Success() < 0.99:
		return fmt.Sprintf("%.2f%% success", 100*s.res.Success())
	case s.res.Elapsed > d+5*time.Second:
		// sipp paces calls: a run far longer than asked means the
		// registrar (or sipp) could not keep the rate.
		return fmt.Sprintf("took %v for %v of load", s.res.Elapsed, d)
	case !s.replicaOK:
		return fmt.Sprintf("registrations per node %v, want %d", s.counts, s.res.OK)
	}
	return ""
}

// measureAll holds each rate, ascending, against every system still in
// the race, in turns, so that all of them see the machine at nearly the
// same time (the machine is shared and its load drifts); a system drops
// out at its first rate not sustained.
func measureAll(ctx context.Context, cfg *config, run int, log io.Writer) ([]row, error) {
	rows := make([]row, len(cfg.systems))
	for i, sys := range cfg.systems {
		rows[i].system = sys
	}
	for _, rate := range cfg.rates {
		for i, sys := range cfg.systems {
			if rows[i].failedAt > 0 {
				continue
			}
			if err := measureStep(ctx, cfg, run, sys, rate, &rows[i], log); err != nil {
				return rows, err
			}
		}
	}
	return rows, nil
}

func (cfg *config) start(ctx context.Context, sys, dir string) (*system, error) {
	switch sys {
	case "a", "c":
		return startKamailio(ctx, dir, sys == "c")
	default:
		bin, err := cfg.registrarBin(ctx)
		if err != nil {
			return nil, err
		}
		return startSipha(ctx, dir, bin, cfg.countMetric, sys == "d")
	}
}

// registrarBin is the examples/registrar binary, built on first use.
func (cfg *config) registrarBin(ctx context.Context) (string, error) {
	if cfg.registrar == "" {
		bin, err := buildRegistrar(ctx, cfg.dir)
		if err != nil {
			return "", err
		}
		cfg.registrar = bin
	}
	return cfg.registrar, nil
}

// measureStep holds rate against a fresh sys and records the outcome in r.
func measureStep(ctx context.Context, cfg *config, run int, sys string, rate int, r *row, log io.Writer) error {
	// A directory per run too: a registrar started on an earlier run's
	// Raft state would look for its peers at that run's ports.
	dir := filepath.Join(cfg.dir, fmt.Sprintf("run%d", run), fmt.Sprintf("%s-%d", sys, rate))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st, name, err := cfg.holdRate(ctx, sys, dir, rate)
	if name != "" {
		r.system = name
	}
	if err != nil {
		return fmt.Errorf("%s at %d/s: %w", r.system, rate, err)
	}
	v := st.verdict(rate, cfg.duration)
	fmt.Fprintf(log, "%-26s %6d/s: sent %d ok %d timeouts %d retrans %d in %v, cpu %v, nodes %v, load %s %s\n",
		r.system, rate, st.res.Sent, st.res.OK, st.res.Timeouts, st.res.Retrans, st.res.Elapsed, st.cpu, st.counts, loadAvg(), v)
	if v != "" {
		r.failedAt, r.failReason = rate, v
		return nil
	}
	r.best = rate
	r.cpuPerReg = st.cpu / time.Duration(max(st.res.OK, 1))
	return nil
}

// loadAvg is the machine's 1-minute load average, for the log: other work
// on a shared machine moves the figures.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// holdRate starts sys afresh, drives rate for the configured duration and
// checks every node holds every registration.
func (cfg *config) holdRate(ctx context.Context, sys, dir string, rate int) (step, string, error) {
	s, err := cfg.start(ctx, sys, dir)
	if err != nil {
		return step{}, "", err
	}
	defer s.stop()
	var st step
	cpu0 := s.cpu()
	st.res, err = runSipp(ctx, dir, s.nodes[0].sip, rate, cfg.duration)
	if err != nil {
		return st, s.name, err
	}
	// Replication is asynchronous: give the peer a moment to catch up.
	// (A count that never matches, as after timeouts whose REGISTERs were
	// stored all the same, ends with the counts last read; -1: unreadable.)
	deadline := time.Now().Add(15 * time.Second)
	for {
		st.counts, st.replicaOK = st.counts[:0], true
		for _, n := range s.nodes {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := n.count(cctx)
			cancel()
			if err != nil {
				c = -1
			}
			st.counts = append(st.counts, c)
			st.replicaOK = st.replicaOK && c == int(st.res.OK)
		}
		if st.replicaOK || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	st.cpu = s.cpu() - cpu0
	return st, s.name, nil
}

func printTable(w io.Writer, rows []row, cfg config) {
	fmt.Fprintf(w, "REGISTER/s sustained for %v (>= 99%% 200 OK, no timeouts, every node holds every binding)\n\n", cfg.duration)
	fmt.Fprintln(w, "| system | highest sustained REGISTER/s | CPU per REGISTER | first rate not sustained |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range rows {
		fail := "—"
		if r.failedAt > 0 {
			fail = fmt.Sprintf("%d/s: %s", r.failedAt, r.failReason)
		}
		cpu := "—"
		if r.best > 0 {
			cpu = fmt.Sprintf("%.1f µs", float64(r.cpuPerReg)/float64(time.Microsecond))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s |\n", r.system, r.best, cpu, fail)
	}
}
