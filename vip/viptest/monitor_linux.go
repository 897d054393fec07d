package viptest

import (
	"bufio"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// AddrEvent is one line of `ip -ts monitor address` about the watched
// address.
type AddrEvent struct {
	At      time.Time // the kernel notification's timestamp, as ip printed it
	Host    string
	Deleted bool
}

// Monitor runs one `ip -ts monitor all-nsid address` in the bridge
// namespace, which reports the address changes of every host namespace
// given an nsid there. The kernel makes every change and sends its
// notification under one lock (RTNL), so the single stream has the true
// order across hosts: a short overlap that polling could miss still
// shows, and a reader scheduled late cannot reorder two hosts' events (one
// monitor per host could, by its own receive timestamps, under load).
// Its methods are safe for concurrent use; it stops when the test ends.
type Monitor struct {
	addr string
	mu   sync.Mutex
	evs  []AddrEvent
	cmd  *exec.Cmd
	wg   sync.WaitGroup
}

// Monitor starts recording the adds and deletes of addr (e.g.
// "198.51.100.100" or "2001:db8::100") on hosts.
func (tp *Topo) Monitor(addr string, hosts ...string) *Monitor {
	tp.T.Helper()
	m := &Monitor{addr: addr}
	// The veths already gave each host namespace an nsid in the bridge's
	// ("nsid 0 (iproute2 netns name: svip-1-1-h1)"); give one to any
	// host without.
	host := map[string]string{}
	ids := map[string]string{}
	for _, l := range strings.Split(tp.Must("-n", tp.NS("br"), "netns", "list-id"), "\n") {
		var id, name string
		if _, err := fmt.Sscanf(l, "nsid %s (iproute2 netns name: %s", &id, &name); err == nil {
			ids[strings.TrimSuffix(name, ")")] = id
		}
	}
	for i, h := range hosts {
		id, ok := ids[tp.NS(h)]
		if !ok {
			id = strconv.Itoa(1000 + i)
			tp.Must("-n", tp.NS("br"), "netns", "set", tp.NS(h), id)
		}
		host[id] = h
	}
	m.cmd = exec.Command("ip", "-n", tp.NS("br"), "-ts", "monitor", "all-nsid", "address")
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		tp.T.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		tp.T.Fatal(err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if e, ok := parseMonitorLine(sc.Text(), host, addr); ok {
				m.mu.Lock()
				m.evs = append(m.evs, e)
				m.mu.Unlock()
			}
		}
	}()
	tp.T.Cleanup(func() {
		m.cmd.Process.Kill()
		m.wg.Wait()
		m.cmd.Wait()
	})
	time.Sleep(100 * time.Millisecond) // let the monitor subscribe
	return m
}

// parseMonitorLine reads "[2026-11-23T08:45:14.313492] [nsid 1][Deleted ]2:
// eth0 inet 198.51.100.100/24 ..." (inet6 for an IPv6 address); host maps
// nsids to hosts.
func parseMonitorLine(line string, host map[string]string, addr string) (AddrEvent, bool) {
	if !strings.HasPrefix(line, "[") || !strings.Contains(line, " inet "+addr+"/") && !strings.Contains(line, " inet6 "+addr+"/") {
		return AddrEvent{}, false
	}
	ts, rest, ok := strings.Cut(line[1:], "] [nsid ")
	if !ok {
		return AddrEvent{}, false
	}
	id, rest, ok := strings.Cut(rest, "]")
	if !ok || host[id] == "" {
		return AddrEvent{}, false
	}
	at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", ts, time.Local)
	if err != nil {
		return AddrEvent{}, false
	}
	return AddrEvent{At: at, Host: host[id], Deleted: strings.HasPrefix(rest, "Deleted")}, true
}

// Events returns the events so far, in the kernel's order.
func (m *Monitor) Events() []AddrEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.evs)
}

// First returns the first add (or delete) on host at or after from.
func (m *Monitor) First(host string, deleted bool, from time.Time) (time.Time, bool) {
	for _, e := range m.Events() {
		if e.Host == host && e.Deleted == deleted && !e.At.Before(from) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// Wait returns the time of host's first add (or delete) at or after from,
// waiting up to 3 s for it and failing the test after: `ip monitor` may
// report a change a little after `ip addr` shows it (CI once failed on
// that race).
func (m *Monitor) Wait(t testing.TB, host string, deleted bool, from time.Time) time.Time {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if at, ok := m.First(host, deleted, from); ok {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's monitor reported no change (deleted=%v) since %s", host, deleted, from.Format("15:04:05.000000"))
		}
	}
}

// Overlaps lists the moments two of hosts held the address at once during
// [from, to], from the monitor's timestamps. An add on a host that already
// holds it (a renewal with a new lifetime) is reported as an add again,
// so holding is tracked as a state per host.
func (m *Monitor) Overlaps(from, to time.Time, hosts ...string) []string {
	holding := map[string]bool{}
	var out []string
	for _, e := range m.Events() {
		if e.At.After(to) {
			break
		}
		if !slices.Contains(hosts, e.Host) {
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
