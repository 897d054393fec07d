package vip_test

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/raftowner"
)

const nsVIP = "198.51.100.100"

// cluster3 is two SIP nodes (h1, h2) and an arbiter (h3), each a process
// in its own namespace, running the ownership layer over TCP between them.
type cluster3 struct {
	tp    *topo
	cfgs  map[string]childConfig
	procs map[string]*proc
}

func startCluster3(t *testing.T, tp *topo) *cluster3 {
	t.Helper()
	dir := t.TempDir()
	ids := map[string]cluster.NodeID{"h1": "n1", "h2": "n2", "h3": "arb"}
	var peers []raftowner.Peer
	for _, h := range []string{"h1", "h2", "h3"} {
		peers = append(peers, raftowner.Peer{ID: ids[h], Addr: hostIP[h] + ":7946"})
	}
	c := &cluster3{tp: tp, cfgs: map[string]childConfig{}, procs: map[string]*proc{}}
	for _, h := range []string{"h1", "h2", "h3"} {
		c.cfgs[h] = childConfig{ID: ids[h], Listen: hostIP[h] + ":7946", Peers: peers, Arbiter: h == "h3",
			DataDir: filepath.Join(dir, h), VIP: nsVIP + "/24", VIPs: []cluster.NodeID{"n1", "n2"},
			Lifetime: time.Second, RenewEvery: 250 * time.Millisecond}
		c.start(h)
	}
	for h := range c.procs {
		c.waitSaid(h, "ready", time.Time{})
	}
	return c
}

func (c *cluster3) start(h string) {
	c.procs[h] = c.tp.startNode(h, c.cfgs[h])
}

func (c *cluster3) waitSaid(h, prefix string, from time.Time) timedLine {
	c.tp.t.Helper()
	var l timedLine
	waitUntil(c.tp.t, 20*time.Second, h+" to say "+prefix, func() bool {
		var ok bool
		l, ok = c.procs[h].said(prefix, from)
		return ok
	})
	return l
}

func (c *cluster3) waitAddr(h string, present bool) {
	c.tp.t.Helper()
	waitUntil(c.tp.t, 10*time.Second, h+" VIP present="+map[bool]string{true: "yes", false: "no"}[present], func() bool {
		ok, _ := c.tp.hasAddr(h, nsVIP)
		return ok == present
	})
}

// Three failures on real kernel addresses, in one cluster run: the owner's
// link is cut (it must drop the VIP within its lease, before the standby
// adds it), the owner's host dies (SIGKILL and link down: the standby takes
// over and the client follows the gratuitous ARP), and the owner's process
// alone is killed (its address stays in the kernel until valid_lft runs
// out, which bounds the overlap).
func TestNamespaceFailover(t *testing.T) {
	tp := newTopo(t, "h1", "h2", "h3", "client")
	mon := tp.monitor(nsVIP, "h1", "h2", "h3")
	capt := tp.captureARP("client")
	start := time.Now()
	c := startCluster3(t, tp)
	c.waitAddr("h1", true)
	probe := tp.probe("client", netip.MustParseAddrPort(nsVIP+":5060"))
	waitUntil(t, 5*time.Second, "the client to reach n1 at the VIP", func() bool {
		_, ok := probe.firstFrom("n1", start)
		return ok
	})
	mac := map[string]string{"h1": tp.mac("h1").String(), "h2": tp.mac("h2").String()}

	t.Run("isolated owner drops the VIP first", func(t *testing.T) {
		cut := time.Now()
		tp.setLink("h1", false)
		c.waitAddr("h2", true)
		del, ok := mon.first("h1", true, cut)
		if !ok {
			t.Fatal("h1 never deleted the VIP")
		}
		add, _ := mon.first("h2", false, cut)
		t.Logf("link cut → h1 deleted the VIP after %v; h2 added it after %v",
			del.Sub(cut).Round(time.Millisecond), add.Sub(cut).Round(time.Millisecond))
		if !del.Before(add) {
			t.Errorf("h2 added the VIP at %v, before h1 deleted it at %v", add, del)
		}
		// Lease 150 ms; a generous bound that still catches a node keeping
		// the VIP until its kernel lifetime ran out.
		if d := del.Sub(cut); d > 900*time.Millisecond {
			t.Errorf("isolated h1 held the VIP %v after the cut", d)
		}
		if ov := mon.overlaps(start, time.Now(), "h1", "h2"); len(ov) > 0 {
			t.Errorf("two holders: %v", ov)
		}
		if _, ok := probe.firstFrom("n2", cut); !ok {
			waitUntil(t, 5*time.Second, "the client to reach n2", func() bool { _, ok := probe.firstFrom("n2", cut); return ok })
		}
		tp.setLink("h1", true)
	})

	t.Run("dead host", func(t *testing.T) {
		// Sticky: the VIP stayed on h2 when h1 came back.
		time.Sleep(500 * time.Millisecond)
		if ok, _ := tp.hasAddr("h1", nsVIP); ok {
			t.Fatal("h1 took the VIP back although the policy is sticky")
		}
		kill := time.Now()
		c.procs["h2"].kill()
		tp.setLink("h2", false)
		c.waitAddr("h1", true)
		var reply time.Time
		waitUntil(t, 5*time.Second, "the client to reach n1", func() bool {
			var ok bool
			reply, ok = probe.firstFrom("n1", kill)
			return ok
		})
		add, _ := mon.first("h1", false, kill)
		t.Logf("h2 killed → h1 added the VIP after %v; client's first reply from n1 after %v",
			add.Sub(kill).Round(time.Millisecond), reply.Sub(kill).Round(time.Millisecond))
		garps := capt.frames(func(a arpSeen) bool {
			return a.SPA.String() == nsVIP && a.TPA.String() == nsVIP && a.SHA.String() == mac["h1"] && a.At.After(kill)
		})
		if len(garps) < 5 {
			t.Errorf("client saw %d gratuitous ARPs from h1, want the burst of 5", len(garps))
		}
		neigh := tp.must("-n", tp.ns("client"), "neigh", "show", nsVIP)
		if !strings.Contains(neigh, mac["h1"]) {
			t.Errorf("client's neighbour entry %q, want h1's %s", neigh, mac["h1"])
		}
		// The dead h2 is out of the picture; the live ones never overlap.
		if ov := mon.overlaps(start, time.Now(), "h1", "h3"); len(ov) > 0 {
			t.Errorf("two holders: %v", ov)
		}
	})

	t.Run("killed process leaves the address until valid_lft", func(t *testing.T) {
		// h2 comes back (its kernel address expired while it was down).
		c.waitAddr("h2", false)
		tp.setLink("h2", true)
		back := time.Now()
		c.start("h2")
		c.waitSaid("h2", "ready", back)
		kill := time.Now()
		c.procs["h1"].kill()
		c.waitAddr("h2", true)
		c.waitAddr("h1", false)
		del, _ := mon.first("h1", true, kill)
		add, _ := mon.first("h2", false, kill)
		t.Logf("n1 killed, host up: h2 added the VIP after %v, h1's kernel dropped it after %v (overlap %v)",
			add.Sub(kill).Round(time.Millisecond), del.Sub(kill).Round(time.Millisecond), del.Sub(add).Round(time.Millisecond))
		// Lifetime 1 s, renewed every 250 ms: gone by 2 s after the last
		// renewal at the latest (whole seconds, one-second check).
		if d := del.Sub(kill); d > 2500*time.Millisecond {
			t.Errorf("h1's address outlived its process by %v", d)
		}
	})
}
