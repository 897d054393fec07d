package main

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster/clustertest"
)

// e2eUsers is how many users SIPp registers (issue 11 asks 1000 in CI; 2 s
// here); -tags soak raises it.
var e2eUsers = 1000

// needTool finds a binary; without it the test fails under CI
// (SIPHA_CI=1) and is skipped elsewhere.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("SIPHA_CI") != "" {
		t.Fatalf("%s not installed (Debian package %s, listed in .ci/apt-packages)", name, pkg)
	}
	t.Skipf("%s not installed: apt-get install %s", name, pkg)
	return ""
}

// sipp runs SIPp with a scenario of testdata/sipp against target and
// fails the test unless every call succeeded.
func sipp(ctx context.Context, t *testing.T, bin, dir, target, scenario string, args ...string) {
	t.Helper()
	sf, _ := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	errs := filepath.Join(dir, scenario+".errors")
	all := append([]string{target, "-sf", sf, "-i", "127.0.0.1", "-nostdin", "-timeout", "30s",
		"-trace_err", "-error_file", errs}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		e, _ := os.ReadFile(errs)
		t.Fatalf("sipp %s → %s: %v\n%s\nerrors:\n%s", scenario, target, err, tail(out, 2000), tail(e, 2000))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// metric reads one unlabelled or labelled sample from a node's /metrics.
func metric(t *testing.T, p *proc, sample string) int {
	t.Helper()
	_, body := httpGet(t, "http://"+p.http+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` ([0-9.e+]+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", sample)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return int(v)
}

// TestSippCluster is issue 11's end-to-end test: three registrar processes,
// SIPp registering users through a and answering their calls, SIPp calling
// through b; a is SIGKILLed and the registrations still resolve and calls
// still succeed through b and c, the CPS limit holds, and every call has
// exactly one CDR at the collector.
func TestSippCluster(t *testing.T) {
	sippBin := needTool(t, "sipp", "sip-tester")
	bin := buildBinary(t)
	dir := t.TempDir()
	// Each node's share of the limit follows its demand a few 100 ms late,
	// so the limit is well above the 20 calls/s SIPp places: the first calls
	// through a node that was idle must not meet its idle share. The burst
	// below still goes far over it.
	const cps = 1000
	var (
		mu  sync.Mutex
		ids = map[string]int{}
	)
	rcv, err := cdr.NewReceiver(cdr.ReceiverConfig{}, func(_ context.Context, rec cdr.Record) error {
		mu.Lock()
		ids[rec.ID]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	col := httptest.NewServer(rcv)
	defer col.Close()

	names := []string{"a", "b", "c"}
	addrs := clustertest.LoopbackAddrs(t, 3)
	procs := make([]*proc, 3)
	var aArgs []string
	for i, id := range names {
		var peers []string
		for j := range names {
			if j != i {
				peers = append(peers, names[j]+"="+addrs[j])
			}
		}
		args := []string{"-id", id, "-sip", "127.0.0.1:0", "-cluster", addrs[i], "-http", "127.0.0.1:0",
			"-peers", strings.Join(peers, ","), "-data", filepath.Join(dir, id), "-cps", strconv.Itoa(cps),
			"-cdr-url", col.URL}
		if i == 0 {
			aArgs = args
		}
		procs[i] = startProc(t, bin, args...)
	}
	for _, p := range procs {
		waitHealthy(t, p)
	}
	a, b, c := procs[0], procs[1], procs[2]
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var csv strings.Builder
	csv.WriteString("SEQUENTIAL\n")
	for i := range e2eUsers {
		fmt.Fprintf(&csv, "user%04d;\n", i)
	}
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	uasPort := strconv.Itoa(freeUDPPort(t))
	start := time.Now()
	sipp(ctx, t, sippBin, dir, a.sip, "register.xml", "-inf", users, "-m", strconv.Itoa(e2eUsers),
		"-r", "500", "-l", "100", "-p", uasPort)
	t.Logf("%d users registered through a in %v", e2eUsers, time.Since(start))
	for _, p := range procs {
		waitMetric(t, p, "sipha_registrations", e2eUsers)
	}

	uas := exec.CommandContext(ctx, sippBin, "-sf", mustAbs(t, "testdata/sipp/uas.xml"), "-i", "127.0.0.1", "-p", uasPort,
		"-nostdin", "-trace_err", "-error_file", filepath.Join(dir, "uas.errors"))
	uas.Dir = dir
	if err := uas.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { uas.Process.Kill(); uas.Wait() }()
	time.Sleep(200 * time.Millisecond) // the UAS binds its port

	const calls = 20
	callArgs := []string{"-inf", users, "-m", strconv.Itoa(calls), "-r", "20", "-l", "20"}
	sipp(ctx, t, sippBin, dir, b.sip, "uac.xml", callArgs...)

	// SIGKILL a: b and c still resolve every user and place new calls at
	// once. The first call (INVITE, answer, 100 ms talk, BYE) through b
	// starts right after the kill and must be over within a second.
	a.cmd.Process.Kill()
	killed := time.Now()
	sipp(ctx, t, sippBin, dir, b.sip, "uac.xml", "-inf", users, "-m", "1")
	first := time.Since(killed)
	t.Logf("first call through b after a was SIGKILLed: done %v after the kill (SIPp start-up included)", first)
	if first > time.Second {
		t.Errorf("the first call after the kill took %v", first)
	}
	sipp(ctx, t, sippBin, dir, b.sip, "uac.xml", callArgs...)
	sipp(ctx, t, sippBin, dir, c.sip, "uac.xml", callArgs...)
	for _, p := range []*proc{b, c} {
		if n := metric(t, p, "sipha_registrations"); n != e2eUsers {
			t.Errorf("%s registrations after a died: %d", p.sip, n)
		}
	}

	// The CPS limit holds across b and c together.
	cpsBurst(t, []*proc{b, c}, cps, time.Second)

	// a comes back on its data directory: it syncs the registrations again,
	// and whatever CDRs it had spooled but not delivered when it was killed
	// go out now (the collector drops any it had already).
	procs[0] = startProc(t, bin, aArgs...)
	a = procs[0]
	waitHealthy(t, a)
	waitMetric(t, a, "sipha_registrations", e2eUsers)

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := len(ids)
		mu.Unlock()
		if got >= 3*calls+1 {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				_, body := httpGet(t, "http://"+p.http+"/metrics")
				t.Logf("%s metrics:\n%s", p.sip, grepLines(body, "dialog", "cdr", "ownership_held{", "in_dialog", "forwarded"))
			}
			t.Fatalf("%d CDRs at the collector after 20 s, want %d", got, 3*calls+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would show now
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 3*calls+1 {
		t.Errorf("%d distinct CDR IDs for %d calls", len(ids), 3*calls+1)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("CDR %s handed over %d times", id, n)
		}
	}
	for _, p := range procs {
		p.stop(t, syscall.SIGTERM)
	}
}

// cpsBurst sends INVITEs to an unknown user at every node from 4 senders
// each for d, and checks that the nodes together admitted (their
// sipha_cps_total allowed) at most the cluster-wide limit over the elapsed
// time plus the bursts, and refused the rest with 503.
func cpsBurst(t *testing.T, nodes []*proc, limit int, d time.Duration) {
	t.Helper()
	const allowed = `sipha_cps_total{decision="allowed"}`
	before := 0
	for _, p := range nodes {
		before += metric(t, p, allowed)
	}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for ai, p := range nodes {
		addr := p.sip
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := net.Dial("udp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				buf := make([]byte, 4096)
				for i := 0; time.Since(start) < d; i++ {
					tag := fmt.Sprintf("%d-%d-%d", ai, w, i)
					msg := "INVITE sip:nobody@example.com SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() +
						";branch=z9hG4bK-" + tag + "\r\nMax-Forwards: 70\r\nFrom: <sip:x@example.org>;tag=" + tag +
						"\r\nTo: <sip:nobody@example.com>\r\nCall-ID: burst-" + tag + "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
					conn.Write([]byte(msg))
					for {
						conn.SetReadDeadline(time.Now().Add(2 * time.Second))
						n, err := conn.Read(buf)
						if err != nil {
							t.Errorf("no answer to INVITE %s: %v", tag, err)
							return
						}
						line, rest, _ := strings.Cut(string(buf[:n]), "\r\n")
						if !strings.Contains(rest, "burst-"+tag+"\r\n") {
							continue // a retransmitted answer to an earlier INVITE (never ACKed)
						}
						if strings.HasPrefix(line, "SIP/2.0 404") {
							admitted.Add(1)
						} else if strings.HasPrefix(line, "SIP/2.0 503") {
							refused.Add(1)
						} else {
							continue // 100 Trying
						}
						break
					}
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := 0
	for _, p := range nodes {
		after += metric(t, p, allowed)
	}
	bound := float64(limit)*elapsed.Seconds() + float64(limit)/10 + 5
	t.Logf("CPS burst at %d nodes: %d admitted (the nodes count %d), %d refused in %v (limit %d/s: at most %.0f)",
		len(nodes), admitted.Load(), after-before, refused.Load(), elapsed, limit, bound)
	if refused.Load() == 0 || float64(after-before) > bound || admitted.Load() != int64(after-before) {
		t.Errorf("the cluster-wide CPS limit did not hold")
	}
}

func waitMetric(t *testing.T, p *proc, sample string, want int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%s %d at %s", sample, want, p.sip), func() bool { return metric(t, p, sample) == want })
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freeUDPPort(t *testing.T) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// grepLines keeps the sample lines of body that contain any of words.
func grepLines(body string, words ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, w := range words {
			if !strings.HasPrefix(l, "#") && strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
