package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// callMode is one way examples/registrar handles calls in the -calls
// comparison.
type callMode struct {
	name  string
	flags []string
}

// callModes are the two sides of the -calls comparison: the proxy as it
// ships (every INVITE through the CPS limiter, every call a tracked
// dialog in two profiles, a CDR queued at its end; the limit far above
// any rate reached, so nothing is refused) and the same proxy forwarding
// without either.
func callModes() []callMode {
	return []callMode{
		{"dialog + CPS on", []string{"-cps", "1000000"}},
		{"off (-no-call-tracking)", []string{"-no-call-tracking"}},
	}
}

// callRow is one mode's result in one run.
type callRow struct {
	run, best  int
	mode       string
	cpuPerCall time.Duration // at best
	failedAt   int
	failReason string
	sustained  map[int]step // by rate
}

// measureCalls holds each call rate, ascending, against a fresh registrar
// in each mode, in turns, so both modes see the same machine at nearly
// the same time; a mode drops out at its first rate not sustained. Each
// run starts with the other mode first.
func measureCalls(ctx context.Context, cfg *config, log io.Writer) ([]callRow, error) {
	var out []callRow
	for run := 1; run <= cfg.repeats; run++ {
		modes := callModes()
		if run%2 == 0 {
			slices.Reverse(modes)
		}
		rows := make([]callRow, len(modes))
		for i, m := range modes {
			rows[i] = callRow{run: run, mode: m.name, sustained: map[int]step{}}
		}
		for _, rate := range cfg.callRates {
			for i, m := range modes {
				if rows[i].failedAt > 0 {
					continue
				}
				dir := filepath.Join(cfg.dir, fmt.Sprintf("calls-%d-%d-%d", run, i, rate))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return out, err
				}
				st, err := cfg.holdCalls(ctx, m, dir, rate)
				if err != nil {
					return append(out, rows...), fmt.Errorf("calls %s at %d/s: %w", m.name, rate, err)
				}
				v := st.verdict(rate, cfg.duration)
				fmt.Fprintf(log, "run %d %-24s %5d calls/s: sent %d ok %d failed %d timeouts %d retrans %d in %v, cpu %v, load %s %s\n",
					run, m.name, rate, st.res.Sent, st.res.OK, st.res.Failed, st.res.Timeouts, st.res.Retrans, st.res.Elapsed, st.cpu, loadAvg(), v)
				if v != "" {
					rows[i].failedAt, rows[i].failReason = rate, v
					continue
				}
				rows[i].best = rate
				rows[i].cpuPerCall = st.cpu / time.Duration(max(st.res.OK, 1))
				rows[i].sustained[rate] = st
			}
		}
		slices.SortFunc(rows, func(a, b callRow) int { return strings.Compare(a.mode, b.mode) })
		out = append(out, rows...)
	}
	return out, nil
}

// holdCalls starts one registrar in mode m, registers the callees through
// it, starts a sipp UAS answering for them and has a sipp UAC place rate
// calls/s through the registrar for the configured duration.
func (cfg *config) holdCalls(ctx context.Context, m callMode, dir string, rate int) (step, error) {
	bin, err := cfg.registrarBin(ctx)
	if err != nil {
		return step{}, err
	}
	s, err := startSipha(ctx, dir, bin, cfg.countMetric, false, m.flags...)
	if err != nil {
		return step{}, err
	}
	defer s.stop()
	target := s.nodes[0].sip
	uac, uasScen, users, err := writeCallFiles(dir)
	if err != nil {
		return step{}, err
	}
	port, err := registerCallees(ctx, target)
	if err != nil {
		return step{}, err
	}
	uas := exec.Command("sipp", "-sf", uasScen, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-nostdin", "-fd", "3600")
	if err := start(uas, filepath.Join(dir, "uas.log")); err != nil {
		return step{}, err
	}
	defer func() { syscall.Kill(-uas.Process.Pid, syscall.SIGKILL); uas.Wait() }()
	bound, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := waitFor(bound, "sipp UAS listening", func() error {
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil // taken: the UAS has it
		}
		pc.Close()
		return fmt.Errorf("port %d still free", port)
	}); err != nil {
		return step{}, err
	}
	st := step{replicaOK: true} // one node: nothing to replicate
	cpu0 := s.cpu()
	st.res, err = runOneSipp(ctx, filepath.Join(dir, "uac.csv"), uac, target, rate, cfg.duration, "-inf", users)
	st.cpu = s.cpu() - cpu0
	return st, err
}

// cpuPerCall is the registrar CPU per completed call over the rates both
// rows sustained, for each row, and how many rates that is. The CPU at one
// rate is noisy on a shared machine; the sum over several is less so.
func cpuPerCall(on, off callRow) (time.Duration, time.Duration, int) {
	var cpu [2]time.Duration
	var ok [2]uint64
	n := 0
	for rate, a := range on.sustained {
		b, both := off.sustained[rate]
		if !both {
			continue
		}
		n++
		cpu[0], ok[0] = cpu[0]+a.cpu, ok[0]+a.res.OK
		cpu[1], ok[1] = cpu[1]+b.cpu, ok[1]+b.res.OK
	}
	if n == 0 {
		return 0, 0, 0
	}
	return cpu[0] / time.Duration(ok[0]), cpu[1] / time.Duration(ok[1]), n
}

// printCalls writes each run's two rows and the ratio of the rates
// sustained with tracking on and off, then the spread over the runs.
func printCalls(w io.Writer, rows []callRow, cfg config) {
	fmt.Fprintf(w, "Call setup rate through examples/registrar sustained for %v (INVITE, 180, 200, ACK, 100 ms, BYE, 200;\n", cfg.duration)
	fmt.Fprintln(w, ">= 99% of calls complete, no timeouts), dialog tracking + CPS limiter on vs off")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| run | dialog tracking + CPS limiter | highest sustained calls/s | CPU per call | first rate not sustained |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	var ratios []float64
	var cpuLines []string
	for i, r := range rows {
		fail, cpu := "—", "—"
		if r.failedAt > 0 {
			fail = fmt.Sprintf("%d/s: %s", r.failedAt, r.failReason)
		}
		if r.best > 0 {
			cpu = fmt.Sprintf("%.0f µs", float64(r.cpuPerCall)/float64(time.Microsecond))
		}
		fmt.Fprintf(w, "| %d | %s | %d | %s | %s |\n", r.run, r.mode, r.best, cpu, fail)
		// Rows come in pairs per run, "dialog + CPS on" before "off".
		if i%2 == 1 && rows[i-1].run == r.run && r.best > 0 {
			ratios = append(ratios, float64(rows[i-1].best)/float64(r.best))
		}
		if i%2 == 1 && rows[i-1].run == r.run {
			if on, off, n := cpuPerCall(rows[i-1], r); n > 0 {
				cpuLines = append(cpuLines, fmt.Sprintf("run %d: CPU per call over the %d rates both sustained: on %.0f µs, off %.0f µs (on/off %.2f)",
					r.run, n, float64(on)/float64(time.Microsecond), float64(off)/float64(time.Microsecond), float64(on)/float64(off)))
			}
		}
	}
	if len(ratios) > 0 {
		var s []string
		for _, x := range ratios {
			s = append(s, fmt.Sprintf("%.2f", x))
		}
		fmt.Fprintf(w, "\nratio on/off per run: %s (min %.2f, max %.2f)\n", strings.Join(s, ", "), slices.Min(ratios), slices.Max(ratios))
	}
	if len(cpuLines) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(cpuLines, "\n"))
	}
}
