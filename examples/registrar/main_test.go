package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster/clustertest"
)

// buildBinary builds the registrar into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "registrar")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestHelp(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("-h: %v\n%s", err, out)
	}
	for _, want := range []string{"Usage: registrar", "-id b -sip 127.0.0.1:5061", "-peers a=127.0.0.1:7946,c=127.0.0.1:7948",
		"-cdr-url", "-cps", "-vip", "-iface", "-secret", "-http", "-data", "-no-call-tracking"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(bin, "-id", "a").CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "required") {
		t.Errorf("missing flags: exit %d, %s", code, out)
	}
	out, err = exec.Command(bin, "-id", "a", "-cluster", "127.0.0.1:1", "-data", t.TempDir(), "-insecure",
		"-no-call-tracking", "-cps", "10").CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "-no-call-tracking leaves nothing") {
		t.Errorf("-no-call-tracking with -cps: exit %d, %s", code, out)
	}
	out, err = exec.Command(bin, "-id", "a", "-cluster", "127.0.0.1:1", "-data", t.TempDir(), "-insecure",
		"-peers", "b=nohostport").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), `peer "b=nohostport"`) {
		t.Errorf("bad -peers: exit %d, %s", code, out)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// proc is a running registrar process.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	sip   string
	http  string
}

var readyLine = regexp.MustCompile(`^registrar (\S+) ready: sip (\S+) \(udp\+tcp\), cluster (\S+), http (\S+)$`)

// startProc starts the binary and waits for its ready line.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := launch(t, bin, args...)
	p.waitReady(t)
	return p
}

// launch starts the binary; it is killed when the test ends.
func launch(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), lines: make(chan string, 16)}
	p.cmd.Env = append(os.Environ(), "SIPHA_SECRET=registrar-test-secret-0123")
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = io.Discard
	if testing.Verbose() {
		p.cmd.Stderr = os.Stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p
}

// waitReady waits for the ready line and reads the bound addresses off it.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	select {
	case l := <-p.lines:
		m := readyLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("first line %q", l)
		}
		p.sip, p.http = m[2], m[4]
	case <-time.After(20 * time.Second):
		t.Fatal("no ready line within 20 s")
	}
}

// stop sends sig and waits for the "stopped" line and a zero exit.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var last string
		for l := range p.lines {
			last = l
		}
		if !strings.HasSuffix(last, " stopped") {
			t.Errorf("last line %q", last)
		}
		done <- p.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after %v: %v", sig, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15 s after %v", sig)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestSignals starts one node, registers a user over UDP, stops it with
// SIGTERM, starts it again on the same data directory (the binding was
// persisted) and stops it with SIGINT.
func TestSignals(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	args := []string{"-id", "a", "-sip", "127.0.0.1:0", "-cluster", clustertest.LoopbackAddrs(t, 1)[0], "-http", "127.0.0.1:0",
		"-data", data, "-cps", "20"}
	p := startProc(t, bin, args...)
	waitHealthy(t, p)
	c, err := net.Dial("udp", p.sip)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bK-bin1\r\n" +
		"From: <sip:carol@example.com>;tag=1\r\nTo: <sip:carol@example.com>\r\nCall-ID: bin-1\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:carol@" + c.LocalAddr().String() + ">\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
	c.Write([]byte(reg))
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200 OK") {
		t.Fatalf("REGISTER: %v %q", err, buf[:n])
	}
	p.stop(t, syscall.SIGTERM)

	p = startProc(t, bin, args...)
	waitHealthy(t, p)
	if _, body := httpGet(t, "http://"+p.http+"/metrics"); !strings.Contains(body, "sipha_registrations 1\n") {
		t.Errorf("binding not restored from the data directory:\n%s", body)
	}
	p.stop(t, syscall.SIGINT)
}

func waitHealthy(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := httpGet(t, "http://"+p.http+"/healthz")
		if code == 200 && body == "ok\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz %d %q after 20 s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
