package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needs fails under CI (which installs every tool the suite uses) and
// skips elsewhere when a tool is missing.
func needs(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("SIPHA_CI") != "" {
				t.Fatalf("%s missing (CI installs it from .ci/apt-packages)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// testdata/sipp-stat.csv is a real -trace_stat file of sipp 3.6.1: 3000
// REGISTERs at 1000/s against Kamailio, all answered.
func TestParseSippStat(t *testing.T) {
	b, err := os.ReadFile("testdata/sipp-stat.csv")
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseSippStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 3000 || r.OK != 3000 || r.Failed != 0 || r.Timeouts != 0 || r.Elapsed != 3*time.Second {
		t.Fatalf("parsed %+v", r)
	}
	if r.Success() != 1 {
		t.Fatalf("success %v", r.Success())
	}
	for _, bad := range []string{"", "only;a;header\n", "OutgoingCall(C);SuccessfulCall(C)\n10;x\n"} {
		if _, err := parseSippStat([]byte(bad)); err == nil {
			t.Errorf("parseSippStat(%q) accepted", bad)
		}
	}
}

func TestParseClock(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"00:00:07":        7 * time.Second,
		"01:02:03":        time.Hour + 2*time.Minute + 3*time.Second,
		"00:00:02:444000": 2444 * time.Millisecond,
	} {
		if got, err := parseClock(in); err != nil || got != want {
			t.Errorf("parseClock(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "7", "00:00", "a:b:c", "00:-1:00", "1:2:3:4:5"} {
		if _, err := parseClock(bad); err == nil {
			t.Errorf("parseClock(%q) accepted", bad)
		}
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP x y\n# TYPE sipha_usrloc_aors gauge\nsipha_usrloc_aors_total 9\nsipha_usrloc_aors 1234\n"
	if v, err := parseMetric(strings.NewReader(text), "sipha_usrloc_aors"); err != nil || v != 1234 {
		t.Fatalf("got %v, %v", v, err)
	}
	if _, err := parseMetric(strings.NewReader(text), "absent"); err == nil {
		t.Fatal("absent metric found")
	}
}

func TestVerdict(t *testing.T) {
	ok := step{res: loadResult{Sent: 100, OK: 100, Elapsed: 10 * time.Second}, replicaOK: true}
	if v := ok.verdict(10, 10*time.Second); v != "" {
		t.Fatalf("clean step rejected: %s", v)
	}
	for name, s := range map[string]step{
		"timeouts": {res: loadResult{Sent: 100, OK: 100, Timeouts: 1, Elapsed: 10 * time.Second}, replicaOK: true},
		"success":  {res: loadResult{Sent: 100, OK: 98, Elapsed: 10 * time.Second}, replicaOK: true},
		"slow":     {res: loadResult{Sent: 100, OK: 100, Elapsed: 16 * time.Second}, replicaOK: true},
		"replica":  {res: loadResult{Sent: 100, OK: 100, Elapsed: 10 * time.Second}, counts: []int{100, 97}},
		"nothing":  {replicaOK: true},
	} {
		if v := s.verdict(10, 10*time.Second); v == "" {
			t.Errorf("%s: step accepted", name)
		}
	}
}

func TestGroupCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for groupCPU(cmd.Process.Pid) < 50*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("a busy shell's group used %v of CPU", groupCPU(cmd.Process.Pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The generated configurations pass Kamailio's own check.
func TestKamailioConfig(t *testing.T) {
	needs(t, "kamailio")
	mods, err := kamailioModPath()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, p := range []kamailioParams{
		{Children: 2, SIP: 5060, ModPath: mods, Ctl: filepath.Join(dir, "a.sock")},
		{Children: 2, SIP: 5060, DMQ: 5090, Peer: 5091, ModPath: mods, Ctl: filepath.Join(dir, "b.sock")},
	} {
		var b bytes.Buffer
		if err := kamailioCfg.Execute(&b, p); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "k.cfg")
		if err := os.WriteFile(cfg, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("kamailio", "-c", "-f", cfg).CombinedOutput(); err != nil {
			t.Fatalf("kamailio -c rejects the config (%+v): %v\n%s", p, err, out)
		}
	}
}

// A short real run: Kamailio alone and the dmq_usrloc pair at a low rate,
// driven by sipp; both sustain it and the pair replicates every binding.
func TestRunKamailio(t *testing.T) {
	needs(t, "kamailio", "kamcmd", "sipp")
	// The run's working directories go under this test's own, so the
	// leak check below sees only the kamailio processes this run started
	// (another job on the host may run kamailio too).
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if code := run(ctx, []string{"-systems", "a,c", "-rates", "200", "-duration", "2s"}, &out, &log); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), log.String())
	}
	t.Log("\n" + out.String() + log.String())
	for _, want := range []string{"| kamailio single | 200 |", "| kamailio dmq_usrloc pair | 200 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report", want)
		}
	}
	// Zombies wait for init to reap them; anything else of this run is a
	// leak.
	out2, _ := exec.Command("ps", "-C", "kamailio", "-o", "stat=,args=").Output()
	for _, line := range strings.Split(string(out2), "\n") {
		if f := strings.Fields(line); len(f) > 1 && !strings.HasPrefix(f[0], "Z") && strings.Contains(line, tmp) {
			t.Errorf("kamailio processes left running:\n%s", out2)
			break
		}
	}
}

// The sipha side: examples/registrar alone and as a replicating pair, at a
// low rate, both holding every binding, twice (-repeats: the second run
// must not start on the first's state).
func TestRunSipha(t *testing.T) {
	needs(t, "sipp")
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if code := run(ctx, []string{"-systems", "b,d", "-rates", "200", "-duration", "2s", "-repeats", "2"}, &out, &log); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), log.String())
	}
	t.Log("\n" + out.String() + log.String())
	for _, want := range []string{"| sipha registrar | 200 |", "| sipha registrar pair | 200 |"} {
		if n := strings.Count(out.String(), want); n != 2 {
			t.Errorf("%q %d times in the report, want once per run", want, n)
		}
	}
}

func TestUsage(t *testing.T) {
	var out, log bytes.Buffer
	if code := run(context.Background(), []string{"-systems", "x"}, &out, &log); code != 2 {
		t.Fatalf("unknown system: exit %d", code)
	}
	if code := run(context.Background(), []string{"-rates", "1,zero"}, &out, &log); code != 2 {
		t.Fatalf("bad rate: exit %d", code)
	}
	if code := run(context.Background(), []string{"-calls", "-call-rates", "-5"}, &out, &log); code != 2 {
		t.Fatalf("bad call rate: exit %d", code)
	}
	if code := run(context.Background(), []string{"-repeats", "0"}, &out, &log); code != 2 {
		t.Fatalf("-repeats 0: exit %d", code)
	}
	if code := run(context.Background(), []string{"-h"}, &out, &log); code != 0 || !strings.Contains(log.String(), "-duration") {
		t.Fatalf("-h: exit %d\n%s", code, log.String())
	}
}

// The -calls side: a registrar with dialog tracking + CPS limiter on and
// one with them off each carry a low call rate through sipp UAC and UAS.
func TestRunCalls(t *testing.T) {
	needs(t, "sipp")
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if code := run(ctx, []string{"-calls", "-call-rates", "50", "-duration", "2s"}, &out, &log); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), log.String())
	}
	t.Log("\n" + out.String() + log.String())
	for _, want := range []string{"| 1 | dialog + CPS on | 50 |", "| 1 | off (-no-call-tracking) | 50 |", "ratio on/off per run: 1.00"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the report", want)
		}
	}
}

func TestPrintCalls(t *testing.T) {
	at := func(cpu time.Duration, ok uint64) step { return step{cpu: cpu, res: loadResult{OK: ok}} }
	rows := []callRow{
		{run: 1, mode: "dialog + CPS on", best: 900, cpuPerCall: 500 * time.Microsecond, failedAt: 1000, failReason: "3 timeouts",
			sustained: map[int]step{800: at(400*time.Millisecond, 800), 900: at(600*time.Millisecond, 900)}},
		{run: 1, mode: "off (-no-call-tracking)", best: 1000, cpuPerCall: 400 * time.Microsecond, failedAt: 1100, failReason: "98.00% success",
			sustained: map[int]step{800: at(300*time.Millisecond, 800), 900: at(500*time.Millisecond, 900), 1000: at(time.Second, 1000)}},
		{run: 2, mode: "dialog + CPS on", best: 800, failedAt: 900, failReason: "3 timeouts"},
		{run: 2, mode: "off (-no-call-tracking)", best: 800, failedAt: 900, failReason: "3 timeouts"},
	}
	var b bytes.Buffer
	printCalls(&b, rows, config{duration: time.Second})
	for _, want := range []string{"| 1 | dialog + CPS on | 900 | 500 µs | 1000/s: 3 timeouts |",
		"ratio on/off per run: 0.90, 1.00 (min 0.90, max 1.00)",
		"run 1: CPU per call over the 2 rates both sustained: on 588 µs, off 471 µs (on/off 1.25)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}
