package vip_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/ownership/ownershiptest"
)

const nsVIP6 = "2001:db8::100"

// An IPv6 VIP on real kernel addresses, the two cases the DAD-style probe
// decides: the holder's process is killed on a live host (its kernel keeps
// the address until valid_lft runs out and answers the standby's
// neighbour solicitation, so the standby waits: no overlap), and the
// holder's host dies (nobody answers, the standby adds after ProbeWait).
// The client's neighbour entry follows the unsolicited NAs each time.
func TestNamespaceFailoverIPv6(t *testing.T) {
	tp := newTopo6(t, "h1", "h2", "h3", "client")
	mon := tp.Monitor(nsVIP6, "h1", "h2")
	c := startCluster3(t, tp, nsVIP6+"/64")
	a, b := c.firstHolder()
	id := map[string]string{"h1": "n1", "h2": "n2"}
	probe := tp.Probe("client", netip.AddrPortFrom(netip.MustParseAddr(nsVIP6), 5060))
	// clientFollows waits for the client to get a reply at the VIP from h
	// and checks that its neighbour entry names h's MAC.
	clientFollows := func(t *testing.T, h string, since time.Time) time.Time {
		t.Helper()
		var reply time.Time
		ownershiptest.WaitFor(t, 5*time.Second, "the client to reach "+h+" at the VIP", func() bool {
			var ok bool
			reply, ok = probe.FirstFrom(id[h], since)
			return ok
		})
		if neigh := tp.Must("-n", tp.NS("client"), "-6", "neigh", "show", nsVIP6); !strings.Contains(neigh, tp.MAC(h).String()) {
			t.Errorf("client's neighbour entry %q, want %s's %s", neigh, h, tp.MAC(h))
		}
		return reply
	}
	clientFollows(t, a, time.Time{})

	if !t.Run("killed process: the standby waits for the old address to expire", func(t *testing.T) {
		kill, del, add := c.killHolderProcess(t, mon, a, b)
		held := c.waitSaid(b, "held true", kill)
		reply := clientFollows(t, b, kill)
		t.Logf("%s's process killed, host up: %s held the VIP after %v; %s's kernel dropped it after %v; %s added it after %v (%v after the drop); client's first reply from %s after %v",
			a, b, held.At.Sub(kill).Round(time.Millisecond), a, del.Sub(kill).Round(time.Millisecond),
			b, add.Sub(kill).Round(time.Millisecond), add.Sub(del).Round(time.Millisecond), b, reply.Sub(kill).Round(time.Millisecond))
		// The wait was the probe's doing: a's kernel answered it.
		if _, ok := c.procs[b].said("probeconflicts ", kill); !ok {
			t.Errorf("%s added the VIP without a probe conflict", b)
		}
	}) {
		return
	}

	t.Run("dead host: the standby adds after ProbeWait", func(t *testing.T) {
		back := time.Now()
		c.start(a)
		c.waitSaid(a, "ready", back)
		c.waitSIPLeader()
		kill := time.Now()
		c.procs[b].kill()
		tp.SetLink(b, false)
		c.waitAddr(a, true)
		add := mon.Wait(t, a, false, kill)
		held := c.waitSaid(a, "held true", kill)
		reply := clientFollows(t, a, kill)
		t.Logf("%s's host died: %s held the VIP after %v and added it %v later (ProbeWait 40 ms); client's first reply from %s after %v",
			b, a, held.At.Sub(kill).Round(time.Millisecond), add.Sub(held.At).Round(time.Millisecond), a, reply.Sub(kill).Round(time.Millisecond))
		if l, ok := c.procs[a].said("probeconflicts ", kill); ok {
			t.Errorf("%s's probe was answered although %s is dead: %q", a, b, l.Text)
		}
		// Added without kernel DAD (nodad): usable at once, not tentative.
		if out := tp.Must("-n", tp.NS(a), "-6", "addr", "show", "dev", "eth0", "tentative"); out != "" {
			t.Errorf("tentative addresses on %s: %s", a, out)
		}
		// No overlap check: the dead host's kernel keeps its copy until
		// valid_lft runs out, cut off from the LAN.
	})
}
