package viptest

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"
)

// The only ranges a Topo hands out: TEST-NET-2 and the IPv6 documentation
// prefix, so a test can never claim a real address.
const (
	Net4 = "198.51.100.0/24"
	Net6 = "2001:db8::/64"
)

// Topo is a LAN of network namespaces for tests on real kernel addresses:
//
//	host1 ─┐
//	host2 ─┼─ br0 (in a namespace of its own)
//	 ...  ─┘
//
// Each host is a namespace with eth0 (a veth whose peer, p-<host>, is on
// the bridge) holding the addresses the test gave it, lo up and no route
// out. A host with no IPv6 address has IPv6 disabled; one with an IPv6
// address gets no link-local address and takes no router advertisements,
// so only the given addresses appear. Namespaces are named
// <prefix><pid>-<n>-<host>; NewTopo deletes them when the test ends, pass
// or fail, and first deletes those of test processes that died before
// they could.
type Topo struct {
	T      testing.TB
	Prefix string // of every namespace name, "<prefix><pid>-<n>"
	hosts  []string
}

var topoSeq atomic.Int64 // distinct topologies within one test process

// RequireNetns skips the test without root or iproute2's ip, and fails it
// instead when SIPHA_CI=1 (CI has both).
func RequireNetns(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root for network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2's ip"
	}
	if why == "" {
		return
	}
	if os.Getenv("SIPHA_CI") == "1" {
		t.Fatalf("SIPHA_CI=1 and the namespace test %s", why)
	}
	t.Skipf("skipping namespace test: %s", why)
}

// NewTopo creates the bridge and one namespace per host of addrs, each
// with its addresses on eth0 (prefixes such as 198.51.100.1/24 and
// 2001:db8::1/64; IPv6 ones without duplicate address detection).
// Addresses outside Net4 and Net6 fail the test. namePrefix tells one
// package's namespaces from another's ("svip-").
func NewTopo(t testing.TB, namePrefix string, addrs map[string][]netip.Prefix) *Topo {
	t.Helper()
	RequireNetns(t)
	cleanLeftovers(t, namePrefix)
	for h, ps := range addrs {
		for _, p := range ps {
			within := netip.MustParsePrefix(Net4)
			if p.Addr().Is6() {
				within = netip.MustParsePrefix(Net6)
			}
			if !p.IsValid() || p.Bits() < within.Bits() || !within.Contains(p.Addr()) {
				t.Fatalf("viptest: %s's address %s is not within %s or %s", h, p, Net4, Net6)
			}
		}
	}
	tp := &Topo{T: t, Prefix: fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), topoSeq.Add(1))}
	t.Cleanup(tp.destroy)
	tp.Must("netns", "add", tp.NS("br"))
	tp.noIPv6("br")
	tp.Must("-n", tp.NS("br"), "link", "add", "br0", "type", "bridge")
	tp.Must("-n", tp.NS("br"), "link", "set", "br0", "up")
	hosts := make([]string, 0, len(addrs))
	for h := range addrs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts) // the same interface order in every run
	for _, h := range hosts {
		tp.hosts = append(tp.hosts, h)
		tp.Must("netns", "add", tp.NS(h))
		v6 := false
		for _, p := range addrs[h] {
			v6 = v6 || p.Addr().Is6()
		}
		if v6 {
			tp.quietIPv6(h)
		} else {
			tp.noIPv6(h)
		}
		// Created inside the bridge namespace with its peer straight in the
		// host's: the root namespace never sees these interfaces.
		tp.Must("-n", tp.NS("br"), "link", "add", "p-"+h, "type", "veth", "peer", "name", "eth0", "netns", tp.NS(h))
		tp.Must("-n", tp.NS("br"), "link", "set", "p-"+h, "master", "br0", "up")
		tp.Must("-n", tp.NS(h), "link", "set", "lo", "up")
		tp.Must("-n", tp.NS(h), "link", "set", "eth0", "up")
		for _, p := range addrs[h] {
			if p.Addr().Is6() {
				// The test owns the prefix: DAD would only delay the address.
				tp.Must("-n", tp.NS(h), "addr", "add", p.String(), "dev", "eth0", "nodad")
			} else {
				tp.Must("-n", tp.NS(h), "addr", "add", p.String(), "dev", "eth0")
			}
		}
	}
	return tp
}

// noIPv6 keeps the namespace to the IPv4 test range: no link-local
// addresses appear on its interfaces.
func (tp *Topo) noIPv6(h string) {
	tp.Must("netns", "exec", tp.NS(h), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

// quietIPv6 keeps IPv6 in the namespace to the documentation prefix: the
// interfaces created after it get no link-local address (addr_gen_mode
// none) and take no router advertisements. Only lo has ::1.
func (tp *Topo) quietIPv6(h string) {
	tp.Must("netns", "exec", tp.NS(h), "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1",
		"net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.default.autoconf=0")
}

// NS is the name of host h's namespace ("br" is the bridge's).
func (tp *Topo) NS(h string) string { return tp.Prefix + "-" + h }

// IP runs iproute2's ip with args.
func (tp *Topo) IP(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Must is IP failing the test on an error.
func (tp *Topo) Must(args ...string) string {
	tp.T.Helper()
	out, err := tp.IP(args...)
	if err != nil {
		tp.T.Fatal(err)
	}
	return out
}

func (tp *Topo) destroy() {
	for _, h := range append([]string{"br"}, tp.hosts...) {
		if _, err := tp.IP("netns", "del", tp.NS(h)); err != nil && !strings.Contains(err.Error(), "No such file") {
			tp.T.Errorf("cleanup: %v", err)
		}
	}
}

// cleanLeftovers deletes namespaces of test processes that are gone.
func cleanLeftovers(t testing.TB, prefix string) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		if err := exec.Command("ip", "netns", "del", name).Run(); err != nil {
			t.Logf("leftover %s: %v", name, err)
		}
	}
}

// In runs f on a thread switched into host h's namespace. The thread is
// never switched back: it ends with the goroutine, so no other goroutine
// can land in the namespace by accident. Sockets f opens stay in it.
func (tp *Topo) In(h string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		ns, err := netns.GetFromName(tp.NS(h))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// MAC is host h's eth0 hardware address.
func (tp *Topo) MAC(h string) net.HardwareAddr {
	tp.T.Helper()
	out := tp.Must("-n", tp.NS(h), "-o", "link", "show", "dev", "eth0")
	f := strings.Fields(out[strings.Index(out, "link/ether"):])
	m, err := net.ParseMAC(f[1])
	if err != nil {
		tp.T.Fatal(err)
	}
	return m
}

// HasAddr reports whether host h has ip on eth0, and its valid_lft line.
func (tp *Topo) HasAddr(h, ip string) (bool, string) {
	tp.T.Helper()
	out := tp.Must("-n", tp.NS(h), "addr", "show", "dev", "eth0")
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, " "+ip+"/") {
			if i+1 < len(lines) {
				return true, strings.TrimSpace(lines[i+1])
			}
			return true, ""
		}
	}
	return false, ""
}

// SetLink takes host h's cable out of the bridge or puts it back.
func (tp *Topo) SetLink(h string, up bool) {
	tp.T.Helper()
	state := "down"
	if up {
		state = "up"
	}
	tp.Must("-n", tp.NS("br"), "link", "set", "p-"+h, state)
}
