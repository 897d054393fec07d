//go:build vipcompare

package vip_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/vip/viptest"
)

// The keepalived comparison: the same namespaces, the same client, the
// same failure (the owner's link goes down, then its processes are
// SIGKILLed: a dead host), measured as the time from the link going down
// to the client's first reply from the new owner at the VIP. Run with
//
//	go test -tags vipcompare -run Compare -v -timeout 30m ./vip/
//
// SIPHA_VIP_TRIALS sets the trials per system (default 20).

type system interface {
	start(h string)
	kill(h string)
	// ready waits until a restarted host is a standby again.
	ready(h string, since time.Time)
	id(h string) string
}

func trials() int {
	if n, err := strconv.Atoi(os.Getenv("SIPHA_VIP_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 20
}

func TestCompareKeepalived(t *testing.T) {
	viptest.RequireNetns(t)
	if _, err := os.Stat("/usr/sbin/keepalived"); err != nil {
		t.Fatalf("needs keepalived (apt-get install keepalived): %v", err)
	}
	systems := []struct {
		name string
		mk   func(*topo) system
	}{
		{"sipha LAN profile", func(tp *topo) system { return newSipha(tp, 0, 0) }},
		{"sipha tuned (heartbeat 50ms, lease 100ms)", func(tp *topo) system { return newSipha(tp, 50*time.Millisecond, 100*time.Millisecond) }},
		{"keepalived default (advert_int 1)", func(tp *topo) system { return newKeepalived(tp, false) }},
		{"keepalived tuned (vrrp_version 3, advert_int 0.1)", func(tp *topo) system { return newKeepalived(tp, true) }},
	}
	for _, s := range systems {
		t.Run(s.name, func(t *testing.T) {
			tp := newTopo(t, "h1", "h2", "h3", "client")
			runTrials(t, tp, s.name, s.mk(tp))
		})
	}
}

func runTrials(t *testing.T, tp *topo, name string, sys system) {
	probe := tp.Probe("client", netip.MustParseAddrPort(nsVIP+":5060"))
	var times []time.Duration
	for i := 0; i < trials(); i++ {
		owner := waitOwner(t, tp)
		other := map[string]string{"h1": "h2", "h2": "h1"}[owner]
		ownershiptest.WaitFor(t, 10*time.Second, "the client to reach the owner", func() bool {
			_, ok := probe.FirstFrom(sys.id(owner), time.Now().Add(-50*time.Millisecond))
			return ok
		})
		t0 := time.Now()
		tp.SetLink(owner, false)
		sys.kill(owner)
		var reply time.Time
		ownershiptest.WaitFor(t, 20*time.Second, "the client to reach the standby", func() bool {
			var ok bool
			reply, ok = probe.FirstFrom(sys.id(other), t0)
			return ok
		})
		times = append(times, reply.Sub(t0))
		if ls, ok := sys.(interface {
			leaders(from, to time.Time) (before string, during []string)
		}); ok {
			before, during := ls.leaders(t0, reply)
			t.Logf("trial %d: %v; owner %s, leader before %s, leaders during takeover %v", i, reply.Sub(t0).Round(time.Millisecond), sys.id(owner), before, during)
		}
		// The dead host reboots: its addresses are gone, its link comes
		// back, its node starts as a standby.
		tp.IP("-n", tp.NS(owner), "addr", "del", nsVIP+"/24", "dev", "eth0")
		tp.SetLink(owner, true)
		back := time.Now()
		sys.start(owner)
		sys.ready(owner, back)
	}
	slices.Sort(times)
	q := func(p float64) time.Duration { return times[int(p*float64(len(times)-1)+0.5)].Round(time.Millisecond) }
	t.Logf("RESULT %s: n=%d min=%v p50=%v p90=%v p99=%v max=%v", name, len(times), times[0].Round(time.Millisecond), q(0.5), q(0.9), q(0.99), times[len(times)-1].Round(time.Millisecond))

	// Split: the two nodes lose sight of each other; both still reach the
	// arbiter's host and the client (bridge port isolation).
	waitOwner(t, tp)
	for _, h := range []string{"h1", "h2"} {
		tp.Must("-n", tp.NS("br"), "link", "set", "p-"+h, "type", "bridge_slave", "isolated", "on")
	}
	// Sample who holds the VIP every 50 ms for 6 s.
	count := map[int]int{}
	samples := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		n := 0
		for _, h := range []string{"h1", "h2"} {
			if ok, _ := tp.HasAddr(h, nsVIP); ok {
				n++
			}
		}
		count[n]++
		samples++
	}
	pct := func(n int) string { return fmt.Sprintf("%.0f%%", 100*float64(count[n])/float64(samples)) }
	t.Logf("RESULT %s: nodes cut from each other for 6 s (%d samples): VIP held by 0 nodes %s, 1 node %s, 2 nodes %s of the time",
		name, samples, pct(0), pct(1), pct(2))
	for _, h := range []string{"h1", "h2"} {
		tp.Must("-n", tp.NS("br"), "link", "set", "p-"+h, "type", "bridge_slave", "isolated", "off")
	}
}

func waitOwner(t *testing.T, tp *topo) string {
	t.Helper()
	var owner string
	ownershiptest.WaitFor(t, 20*time.Second, "exactly one holder", func() bool {
		n := 0
		for _, h := range []string{"h1", "h2"} {
			if ok, _ := tp.HasAddr(h, nsVIP); ok {
				owner = h
				n++
			}
		}
		return n == 1
	})
	return owner
}

type siphaSys struct{ c *cluster3 }

func newSipha(tp *topo, hb, lease time.Duration) *siphaSys {
	c := newCluster3(tp, nsVIP+"/24", func(cfg *childConfig) { cfg.Heartbeat, cfg.Lease = hb, lease })
	return &siphaSys{c: c}
}

func (s *siphaSys) start(h string)     { s.c.start(h) }
func (s *siphaSys) kill(h string)      { s.c.procs[h].kill() }
func (s *siphaSys) id(h string) string { return string(s.c.cfgs[h].ID) }
func (s *siphaSys) ready(h string, since time.Time) {
	s.c.waitSaid(h, "ready", since)
}

type keepalivedSys struct {
	tp     *topo
	tuned  bool
	dir    string
	procs  map[string]*proc
	starts int
}

func newKeepalived(tp *topo, tuned bool) *keepalivedSys {
	k := &keepalivedSys{tp: tp, tuned: tuned, dir: tp.T.TempDir(), procs: map[string]*proc{}}
	exe, err := os.Executable()
	if err != nil {
		tp.T.Fatal(err)
	}
	for _, h := range []string{"h1", "h2"} {
		js := fmt.Sprintf(`{"ID":"k-%s","VIP":"%s/24","ResponderOnly":true}`, h, nsVIP)
		tp.spawn(h, []string{childEnv + "=" + js}, exe, "-test.run=^$")
		k.start(h)
	}
	return k
}

func (k *keepalivedSys) id(h string) string { return "k-" + h }
func (k *keepalivedSys) kill(h string)      { k.procs[h].kill() }

// start runs keepalived with nopreempt (both BACKUP; h1 has the higher
// priority), the counterpart of sipha's sticky policy.
func (k *keepalivedSys) start(h string) {
	global, advert := "", "1"
	if k.tuned {
		global, advert = "vrrp_version 3", "0.1"
	}
	prio := map[string]int{"h1": 150, "h2": 100}[h]
	conf := fmt.Sprintf(`global_defs {
  router_id %s
  %s
}
vrrp_instance VI_1 {
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
`, h, global, prio, advert, nsVIP)
	f := filepath.Join(k.dir, h+".conf")
	if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
		k.tp.T.Fatal(err)
	}
	// Fresh pid files each start: a SIGKILLed keepalived leaves its own
	// behind, and a new one would take them for a running daemon.
	k.starts++
	pid := filepath.Join(k.dir, fmt.Sprintf("%s-%d", h, k.starts))
	k.procs[h] = k.tp.spawn(h, nil, "keepalived", "-n", "-l", "-D", "-f", f,
		"-p", pid+".pid", "-r", pid+".vrrp.pid", "-c", pid+".chk.pid")
}

func (k *keepalivedSys) ready(h string, since time.Time) {
	ownershiptest.WaitFor(k.tp.T, 20*time.Second, h+" keepalived in BACKUP state", func() bool {
		return k.procs[h].printed("Entering BACKUP STATE", since)
	})
}

// leaders reads the arbiter's view: the leader when the owner died and
// the leaders that followed until the client's reply.
func (s *siphaSys) leaders(from, to time.Time) (before string, during []string) {
	p := s.c.procs["h3"]
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		id, ok := strings.CutPrefix(l.Text, "leader ")
		switch {
		case !ok:
		case l.At.Before(from):
			before = id
		case l.At.Before(to):
			during = append(during, id)
		}
	}
	return before, during
}
