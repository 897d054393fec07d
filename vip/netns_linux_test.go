package vip_test

import (
	"testing"

	"github.com/sipha/sipha/vip/viptest"
)

// The namespace tests build this LAN with viptest.Topo, all of it in
// 198.51.100.0/24 (TEST-NET-2) and with no route out:
//
//	h1 .1 ─┐
//	h2 .2 ─┼─ br0 (in its own namespace)
//	h3 .3 ─┤
//	client .10
//
// Every namespace is named svip-<pid>-<n>-<host> and is deleted when the
// test ends; leftovers of dead test processes are deleted when the next
// one starts.
const nsPrefix = "svip-"

var hostIP = map[string]string{"h1": "198.51.100.1", "h2": "198.51.100.2", "h3": "198.51.100.3", "client": "198.51.100.10"}

// requireNetns skips without root or iproute2, and fails instead under CI.
func requireNetns(t *testing.T) {
	t.Helper()
	viptest.RequireNetns(t)
}

// topo is viptest's LAN with the test at hand, for the helpers of this
// package's tests.
type topo struct {
	*viptest.Topo
	t *testing.T
}

// newTopo creates the bridge namespace and the given hosts.
func newTopo(t *testing.T, hosts ...string) *topo {
	t.Helper()
	addrs := map[string]string{}
	for _, h := range hosts {
		addrs[h] = hostIP[h] + "/24"
	}
	return &topo{Topo: viptest.NewTopo(t, nsPrefix, addrs), t: t}
}
