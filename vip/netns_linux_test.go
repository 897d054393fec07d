package vip_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"
)

// The namespace tests build this LAN, all of it in 198.51.100.0/24
// (TEST-NET-2) and with no route out:
//
//	h1 .1 ─┐
//	h2 .2 ─┼─ br0 (in its own namespace)
//	h3 .3 ─┤
//	client .10
//
// newTopo6 adds IPv6 from the documentation prefix 2001:db8::/64 (h1 ::1,
// ..., client ::10), with no link-local addresses and no routers.
//
// Every namespace is named <prefix>-<host>, prefix "svip-<pid>-<n>", and is
// deleted when the test ends; leftovers of dead test processes are deleted
// when the next one starts.
const nsPrefix = "svip-"

var hostIP = map[string]string{"h1": "198.51.100.1", "h2": "198.51.100.2", "h3": "198.51.100.3", "client": "198.51.100.10"}

var hostIP6 = map[string]string{"h1": "2001:db8::1", "h2": "2001:db8::2", "h3": "2001:db8::3", "client": "2001:db8::10"}

var topoSeq atomic.Int64

// requireNetns skips without root or iproute2, and fails instead under CI.
func requireNetns(t *testing.T) {
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

type topo struct {
	t      *testing.T
	prefix string
	hosts  []string
}

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
	requireNetns(t)
	cleanLeftovers(t)
	tp := &topo{t: t, prefix: fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), topoSeq.Add(1)), hosts: hosts}
	t.Cleanup(tp.destroy)
	tp.must("netns", "add", tp.ns("br"))
	tp.noIPv6("br")
	tp.must("-n", tp.ns("br"), "link", "add", "br0", "type", "bridge")
	tp.must("-n", tp.ns("br"), "link", "set", "br0", "up")
	for _, h := range hosts {
		tp.must("netns", "add", tp.ns(h))
		if v6 {
			tp.quietIPv6(h)
		} else {
			tp.noIPv6(h)
		}
		// Created inside the bridge namespace with its peer straight in the
		// host's: the root namespace never sees these interfaces.
		tp.must("-n", tp.ns("br"), "link", "add", "p-"+h, "type", "veth", "peer", "name", "eth0", "netns", tp.ns(h))
		tp.must("-n", tp.ns("br"), "link", "set", "p-"+h, "master", "br0", "up")
		tp.must("-n", tp.ns(h), "link", "set", "lo", "up")
		tp.must("-n", tp.ns(h), "link", "set", "eth0", "up")
		tp.must("-n", tp.ns(h), "addr", "add", hostIP[h]+"/24", "dev", "eth0")
		if v6 {
			tp.must("-n", tp.ns(h), "addr", "add", hostIP6[h]+"/64", "dev", "eth0", "nodad")
		}
	}
	return tp
}

// noIPv6 keeps the namespace to the IPv4 test range: no link-local
// addresses appear on its interfaces.
func (tp *topo) noIPv6(h string) {
	tp.must("netns", "exec", tp.ns(h), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

// quietIPv6 keeps IPv6 in the namespace to the documentation prefix: the
// interfaces created after it get no link-local address (addr_gen_mode
// none) and take no router advertisements. Only lo has ::1.
func (tp *topo) quietIPv6(h string) {
	tp.must("netns", "exec", tp.ns(h), "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1",
		"net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.default.autoconf=0")
}

func (tp *topo) ns(h string) string { return tp.prefix + "-" + h }

func (tp *topo) ip(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (tp *topo) must(args ...string) string {
	tp.t.Helper()
	out, err := tp.ip(args...)
	if err != nil {
		tp.t.Fatal(err)
	}
	return out
}

func (tp *topo) destroy() {
	for _, h := range append([]string{"br"}, tp.hosts...) {
		if _, err := tp.ip("netns", "del", tp.ns(h)); err != nil && !strings.Contains(err.Error(), "No such file") {
			tp.t.Errorf("cleanup: %v", err)
		}
	}
}

// cleanLeftovers deletes namespaces of test processes that are gone.
func cleanLeftovers(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
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

// in runs f on a thread switched into host h's namespace. The thread is
// never switched back: it ends with the goroutine, so no other goroutine
// can land in the namespace by accident. Sockets f opens stay in it.
func (tp *topo) in(h string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		ns, err := netns.GetFromName(tp.ns(h))
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

func (tp *topo) mac(h string) net.HardwareAddr {
	tp.t.Helper()
	out := tp.must("-n", tp.ns(h), "-o", "link", "show", "dev", "eth0")
	f := strings.Fields(out[strings.Index(out, "link/ether"):])
	m, err := net.ParseMAC(f[1])
	if err != nil {
		tp.t.Fatal(err)
	}
	return m
}

// hasAddr reports whether host h has ip on eth0, and its valid_lft line.
func (tp *topo) hasAddr(h, ip string) (bool, string) {
	tp.t.Helper()
	out := tp.must("-n", tp.ns(h), "addr", "show", "dev", "eth0")
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

// setLink takes host h's cable out of the bridge or puts it back.
func (tp *topo) setLink(h string, up bool) {
	state := "down"
	if up {
		state = "up"
	}
	tp.must("-n", tp.ns("br"), "link", "set", "p-"+h, state)
}
