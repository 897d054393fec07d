package vip_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

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
	tp.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		tp.t.Fatal(err)
	}
	js, _ := json.Marshal(cfg)
	return tp.spawn(h, []string{childEnv + "=" + string(js)}, exe, "-test.run=^$")
}

// spawn runs a command in host h's namespace in its own process group
// (kill takes its children too), recording its stdout lines.
func (tp *topo) spawn(h string, env []string, args ...string) *proc {
	tp.t.Helper()
	p := &proc{host: h, exited: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", tp.NS(h)}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		tp.t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout // one stream of lines, logs included
	if err := p.cmd.Start(); err != nil {
		tp.t.Fatal(err)
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
	tp.t.Cleanup(func() {
		p.kill()
		if tp.t.Failed() {
			tp.t.Logf("%s output:\n%s", h, p.output())
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

// addrEvent is one line of `ip -ts monitor address` about the VIP.
type addrEvent struct {
	At      time.Time
	Host    string
	Deleted bool
}

// monitor runs `ip -ts monitor address` in each host's namespace: the
// kernel reports every add and delete as it happens, so a short overlap
// that polling could miss still shows.
type monitor struct {
	vip  string
	mu   sync.Mutex
	evs  []addrEvent
	cmds []*exec.Cmd
	wg   sync.WaitGroup
}

func (tp *topo) monitor(vip string, hosts ...string) *monitor {
	tp.t.Helper()
	m := &monitor{vip: vip}
	for _, h := range hosts {
		cmd := exec.Command("ip", "-n", tp.NS(h), "-ts", "monitor", "address")
		out, err := cmd.StdoutPipe()
		if err != nil {
			tp.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			tp.t.Fatal(err)
		}
		m.cmds = append(m.cmds, cmd)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if e, ok := parseMonitorLine(sc.Text(), h, vip); ok {
					m.mu.Lock()
					m.evs = append(m.evs, e)
					m.mu.Unlock()
				}
			}
		}()
	}
	tp.t.Cleanup(func() {
		for _, c := range m.cmds {
			c.Process.Kill()
		}
		m.wg.Wait()
		for _, c := range m.cmds {
			c.Wait()
		}
	})
	time.Sleep(100 * time.Millisecond) // let the monitors subscribe
	return m
}

// parseMonitorLine reads "[2026-11-23T08:45:14.313492] [Deleted ]2: eth0
// inet 198.51.100.100/24 ...".
func parseMonitorLine(line, host, vip string) (addrEvent, bool) {
	if !strings.HasPrefix(line, "[") || !strings.Contains(line, " inet "+vip+"/") {
		return addrEvent{}, false
	}
	ts, rest, ok := strings.Cut(line[1:], "]")
	if !ok {
		return addrEvent{}, false
	}
	at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", ts, time.Local)
	if err != nil {
		return addrEvent{}, false
	}
	return addrEvent{At: at, Host: host, Deleted: strings.HasPrefix(strings.TrimSpace(rest), "Deleted")}, true
}

func (m *monitor) events() []addrEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]addrEvent(nil), m.evs...)
}

// first returns the first add (or delete) on host at or after from.
func (m *monitor) first(host string, deleted bool, from time.Time) (time.Time, bool) {
	for _, e := range m.events() {
		if e.Host == host && e.Deleted == deleted && !e.At.Before(from) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// overlaps lists the moments two of hosts held the VIP at once during
// [from, to], from the monitors' timestamps. An add on a host that already
// holds it (a renewal with a new lifetime) is reported as an add again,
// so holding is tracked as a state per host.
func (m *monitor) overlaps(from, to time.Time, hosts ...string) []string {
	holding := map[string]bool{}
	var out []string
	for _, e := range m.events() {
		if e.At.After(to) {
			break
		}
		if !contains(hosts, e.Host) {
			continue
		}
		holding[e.Host] = !e.Deleted
		if e.At.Before(from) || e.Deleted {
			continue
		}
		for h, on := range holding {
			if on && h != e.Host {
				out = append(out, e.At.Format("15:04:05.000000")+" "+e.Host+" added while "+h+" held it")
			}
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// prober sends a datagram to the VIP every 5 ms from the client namespace
// and records who answered when.
type prober struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	replies []timedLine
	stop    chan struct{}
	wg      sync.WaitGroup
}

func (tp *topo) probe(h string, to netip.AddrPort) *prober {
	tp.t.Helper()
	p := &prober{stop: make(chan struct{})}
	if err := tp.In(h, func() (err error) {
		p.conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
		return err
	}); err != nil {
		tp.t.Fatal(err)
	}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.conn.Write([]byte("ping"))
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, err := p.conn.Read(buf)
			if err != nil {
				select {
				case <-p.stop:
					return
				default:
					continue // ICMP unreachable while nobody holds the VIP
				}
			}
			id, _, _ := strings.Cut(string(buf[:n]), " ")
			p.mu.Lock()
			p.replies = append(p.replies, timedLine{time.Now(), id})
			p.mu.Unlock()
		}
	}()
	tp.t.Cleanup(func() {
		close(p.stop)
		p.conn.Close()
		p.wg.Wait()
	})
	return p
}

// firstFrom returns when id first answered at or after from.
func (p *prober) firstFrom(id string, from time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.replies {
		if r.Text == id && !r.At.Before(from) {
			return r.At, true
		}
	}
	return time.Time{}, false
}
