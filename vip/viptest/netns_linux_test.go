package viptest_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/vip/viptest"
)

// The topology itself: addresses only where asked (no IPv6 link-local,
// IPv6 off on an IPv4-only host), the monitor orders adds and deletes
// across hosts and flags an overlap, the ARP capture sees a host resolve
// another, and a host cut from the bridge stops being reached.
func TestTopo(t *testing.T) {
	tp := viptest.NewTopo(t, "svt-", map[string][]netip.Prefix{
		"a": {netip.MustParsePrefix("198.51.100.1/24"), netip.MustParsePrefix("2001:db8::1/64")},
		"b": {netip.MustParsePrefix("198.51.100.2/24")},
	})
	if ok, _ := tp.HasAddr("a", "2001:db8::1"); !ok {
		t.Fatal("a lacks 2001:db8::1")
	}
	if out := tp.Must("-n", tp.NS("a"), "-6", "addr", "show", "dev", "eth0"); strings.Contains(out, "fe80") {
		t.Errorf("a has a link-local address:\n%s", out)
	}
	if out := tp.Must("-n", tp.NS("b"), "-6", "addr", "show"); out != "" {
		t.Errorf("b, IPv4 only, has IPv6 addresses:\n%s", out)
	}

	const vip = "198.51.100.100"
	mon := tp.Monitor(vip, "a", "b")
	start := time.Now().Add(-time.Second) // the monitor's clock is the kernel's, read by ip
	tp.Must("-n", tp.NS("a"), "addr", "add", vip+"/24", "dev", "eth0")
	tp.Must("-n", tp.NS("b"), "addr", "add", vip+"/24", "dev", "eth0")
	tp.Must("-n", tp.NS("a"), "addr", "del", vip+"/24", "dev", "eth0")
	addA := mon.Wait(t, "a", false, start)
	addB := mon.Wait(t, "b", false, start)
	delA := mon.Wait(t, "a", true, start)
	if !addA.Before(addB) && !addA.Equal(addB) || delA.Before(addB) {
		t.Errorf("events out of order: add a %v, add b %v, delete a %v", addA, addB, delA)
	}
	if ov := mon.Overlaps(start, time.Now().Add(time.Second), "a", "b"); len(ov) != 1 {
		t.Errorf("overlaps %q, want the one of b added while a held it", ov)
	}

	capt := tp.CaptureARP("b")
	send := func() error {
		c, err := net.Dial("udp4", "198.51.100.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}
	if err := tp.In("a", send); err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("198.51.100.2")
	asks := func(f viptest.ARPFrame) bool {
		return f.Op == 1 && f.TPA == want && f.SHA.String() == tp.MAC("a").String()
	}
	for deadline := time.Now().Add(3 * time.Second); len(capt.Frames(asks)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b saw no ARP request from a")
		}
	}

	// A listener in b, dialled from a before and after the cut.
	var ln net.Listener
	if err := tp.In("b", func() (err error) { ln, err = net.Listen("tcp4", "198.51.100.2:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() error {
		return tp.In("a", func() error {
			c, err := net.DialTimeout("tcp4", ln.Addr().String(), 500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := dial(); err != nil {
		t.Fatalf("a cannot reach b: %v", err)
	}
	tp.SetLink("b", false)
	if err := dial(); err == nil {
		t.Error("a reached b with b's link down")
	}
	tp.SetLink("b", true)
	// The bridge port may take a moment to forward again, and a's failed
	// neighbour entry to be retried.
	for deadline := time.Now().Add(5 * time.Second); ; {
		err := dial()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a cannot reach b with the link back up: %v", err)
		}
	}
}
