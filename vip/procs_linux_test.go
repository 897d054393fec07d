package vip_test

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipha/sipha/vip/viptest"
)

// The namespace tests build this LAN on viptest.Topo, all of it in
// 198.51.100.0/24 (TEST-NET-2) and with no route out:
//
//	h1 .1 ─┐
//	h2 .2 ─┼─ br0 (in its own namespace)
//	h3 .3 ─┤
//	client .10
//
// newTopo6 adds IPv6 from the documentation prefix 2001:db8::/64 (h1 ::1,
// ..., client ::10), with no link-local addresses and no routers.
// Namespaces are named svip-<pid>-<n>-<host>.
var hostIP = map[string]string{"h1": "198.51.100.1", "h2": "198.51.100.2", "h3": "198.51.100.3", "client": "198.51.100.10"}

var hostIP6 = map[string]string{"h1": "2001:db8::1", "h2": "2001:db8::2", "h3": "2001:db8::3", "client": "2001:db8::10"}

// topo is the shared topology plus the ways these tests start processes
// in it.
type topo struct{ *viptest.Topo }

// newTopo creates the bridge namespace and the given hosts, IPv4 only.
func newTopo(t *testing.T, hosts ...string) *topo {
	t.Helper()
	return buildTopo(t, false, hosts)
}

// newTopo6 is newTopo with IPv6 on the hosts too.
func newTopo6(t *testing.T, hosts ...string) *topo {
	t.Helper()
	return buildTopo(t, true, hosts)
}

func buildTopo(t *testing.T, v6 bool, hosts []string) *topo {
	t.Helper()
	addrs := map[string][]netip.Prefix{}
	for _, h := range hosts {
		addrs[h] = []netip.Prefix{netip.MustParsePrefix(hostIP[h] + "/24")}
		if v6 {
			addrs[h] = append(addrs[h], netip.MustParsePrefix(hostIP6[h]+"/64"))
		}
	}
	return &topo{viptest.NewTopo(t, "svip-", addrs)}
}

// proc is a node process running in a host's namespace.
type proc struct {
	host   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []timedLine
	exited chan struct{}
}

type timedLine struct {
	At   time.Time
	Text string
}

// startNode runs this test binary as a node (childMain) inside host h's
// namespace. `ip netns exec` execs it in place, so the process the test
// kills is the node itself.
func (tp *topo) startNode(h string, cfg childConfig) *proc {
	tp.T.Helper()
	exe, err := os.Executable()
	if err != nil {
		tp.T.Fatal(err)
	}
	js, _ := json.Marshal(cfg)
	return tp.spawn(h, []string{childEnv + "=" + string(js)}, exe, "-test.run=^$")
}

// spawn runs a command in host h's namespace in its own process group
// (kill takes its children too), recording its stdout lines.
func (tp *topo) spawn(h string, env []string, args ...string) *proc {
	tp.T.Helper()
	p := &proc{host: h, exited: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", tp.NS(h)}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		tp.T.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout // one stream of lines, logs included
	if err := p.cmd.Start(); err != nil {
		tp.T.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, timedLine{time.Now(), sc.Text()})
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	tp.T.Cleanup(func() {
		p.kill()
		if tp.T.Failed() {
			tp.T.Logf("%s output:\n%s", h, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.At.Format("15:04:05.000 ") + l.Text + "\n")
	}
	return b.String()
}

// lastLine returns the last line starting with prefix, or "".
func (p *proc) lastLine(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(p.lines[i].Text, prefix) {
			return p.lines[i].Text
		}
	}
	return ""
}

// printed reports whether any line printed at or after from contains s.
func (p *proc) printed(s string, from time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if !l.At.Before(from) && strings.Contains(l.Text, s) {
			return true
		}
	}
	return false
}

// kill sends SIGKILL to the process group and waits for the process to
// be gone.
func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// said reports the first line starting with prefix printed at or after from.
func (p *proc) said(prefix string, from time.Time) (timedLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if !l.At.Before(from) && strings.HasPrefix(l.Text, prefix) {
			return l, true
		}
	}
	return timedLine{}, false
}
