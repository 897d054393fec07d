package viptest

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

// Topo is a LAN of network namespaces for tests on real kernel addresses:
//
//	host1 ─┐
//	host2 ─┼─ br0 (in a namespace of its own)
//	 ...  ─┘
//
// Each host is a namespace with eth0 (a veth whose peer is on the bridge)
// holding the address the test gave it, lo up, no IPv6 and no route out.
// Namespaces are named <prefix><pid>-<n>-<host>; NewTopo deletes them when
// the test ends, pass or fail, and first deletes those of test processes
// that died before they could.
type Topo struct {
	T      testing.TB
	Prefix string // of every namespace name, "<prefix><pid>-<n>"
	prefix string // as given, for leftovers
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
// with its address (a prefix such as "198.51.100.1/24") on eth0.
// namePrefix tells this package's namespaces from others' ("svip-").
func NewTopo(t testing.TB, namePrefix string, addrs map[string]string) *Topo {
	t.Helper()
	RequireNetns(t)
	cleanLeftovers(t, namePrefix)
	tp := &Topo{T: t, Prefix: fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), topoSeq.Add(1)), prefix: namePrefix}
	t.Cleanup(tp.destroy)
	tp.Must("netns", "add", tp.NS("br"))
	tp.noIPv6("br")
	tp.Must("-n", tp.NS("br"), "link", "add", "br0", "type", "bridge")
	tp.Must("-n", tp.NS("br"), "link", "set", "br0", "up")
	for h, addr := range addrs {
		tp.hosts = append(tp.hosts, h)
		tp.Must("netns", "add", tp.NS(h))
		tp.noIPv6(h)
		// Created inside the bridge namespace with its peer straight in the
		// host's: the root namespace never sees these interfaces.
		tp.Must("-n", tp.NS("br"), "link", "add", "p-"+h, "type", "veth", "peer", "name", "eth0", "netns", tp.NS(h))
		tp.Must("-n", tp.NS("br"), "link", "set", "p-"+h, "master", "br0", "up")
		tp.Must("-n", tp.NS(h), "link", "set", "lo", "up")
		tp.Must("-n", tp.NS(h), "link", "set", "eth0", "up")
		tp.Must("-n", tp.NS(h), "addr", "add", addr, "dev", "eth0")
	}
	return tp
}

// noIPv6 keeps the namespace to the IPv4 test range: no link-local
// addresses appear on its interfaces.
func (tp *Topo) noIPv6(h string) {
	tp.Must("netns", "exec", tp.NS(h), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
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
	state := "down"
	if up {
		state = "up"
	}
	tp.Must("-n", tp.NS("br"), "link", "set", "p-"+h, state)
}
