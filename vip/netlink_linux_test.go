package vip_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/vip"
	"github.com/sipha/sipha/vip/viptest"
)

// The netlink backend on a real kernel: the address goes up with its
// lifetime, a gratuitous ARP reaches another host and rewrites its
// neighbour entry, removal is idempotent, and an address nobody renews
// disappears by itself.
func TestNetlinkBackendInNamespace(t *testing.T) {
	tp := newTopo(t, "h1", "client")
	var be *vip.Netlink
	if err := tp.In("h1", func() (err error) { be, err = vip.NewNetlink(); return err }); err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	v := vip.VIP{Prefix: netip.MustParsePrefix("198.51.100.100/24"), Interface: "eth0"}
	capt := tp.CaptureARP("client")
	// The client believes the VIP is elsewhere: the announcement must
	// override that.
	tp.Must("-n", tp.NS("client"), "neigh", "replace", "198.51.100.100", "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale")

	if err := be.Add(ctx, v, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if ok, life := tp.HasAddr("h1", "198.51.100.100"); !ok || !strings.Contains(life, "valid_lft 2sec") {
		t.Fatalf("after Add: present=%v lifetimes %q (want 1.5s rounded up to 2sec)", ok, life)
	}
	if err := be.Announce(ctx, v); err != nil {
		t.Fatal(err)
	}
	mac := tp.MAC("h1")
	vipAddr := v.Prefix.Addr()
	ownershiptest.WaitFor(t, 2*time.Second, "the gratuitous ARP at the client", func() bool {
		return len(capt.Frames(func(a viptest.ARPFrame) bool { return a.SPA == vipAddr })) > 0
	})
	g := capt.Frames(func(a viptest.ARPFrame) bool { return a.SPA == vipAddr })[0]
	if g.Op != 1 || g.TPA != vipAddr || g.SHA.String() != mac.String() || g.EthDst.String() != "ff:ff:ff:ff:ff:ff" {
		t.Fatalf("gratuitous ARP %+v; want request, target=sender=VIP, sha %s, broadcast", g, mac)
	}
	neigh := tp.Must("-n", tp.NS("client"), "neigh", "show", "198.51.100.100")
	if !strings.Contains(neigh, mac.String()) {
		t.Fatalf("client neighbour entry %q, want %s", neigh, mac)
	}

	if err := be.Remove(ctx, v); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tp.HasAddr("h1", "198.51.100.100"); ok {
		t.Fatal("address still there after Remove")
	}
	if err := be.Remove(ctx, v); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := be.Remove(ctx, vip.VIP{Prefix: v.Prefix, Interface: "nope0"}); err != nil {
		t.Fatalf("Remove on a missing interface: %v", err)
	}
	if err := be.Add(ctx, vip.VIP{Prefix: v.Prefix, Interface: "nope0"}, time.Second); err == nil {
		t.Fatal("Add on a missing interface succeeded")
	}

	// Nobody renews: the kernel drops it within its lifetime (rounded to
	// whole seconds) plus its one-second check.
	if err := be.Add(ctx, v, time.Second); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	ownershiptest.WaitFor(t, 3*time.Second, "the kernel to expire the address", func() bool {
		ok, _ := tp.HasAddr("h1", "198.51.100.100")
		return !ok
	})
	t.Logf("an unrenewed 1 s address expired after %v", time.Since(added).Round(10*time.Millisecond))
}
