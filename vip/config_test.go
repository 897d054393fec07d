package vip_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/vip"
)

func TestConfigValidate(t *testing.T) {
	ok := vip.VIP{Prefix: vipA, Interface: "eth0"}
	v6 := vip.VIP{Prefix: netip.MustParsePrefix("2001:db8::100/64"), Interface: "eth0"}
	run := func(context.Context) error { return nil }
	good := []vip.Config{
		{VIPs: []vip.VIP{ok}},
		{VIPs: []vip.VIP{ok, v6}, Lifetime: 3 * time.Second, RenewEvery: time.Second},
		{VIPs: []vip.VIP{ok}, Checks: []vip.Check{{Name: "sip", Run: run}}},
	}
	for i, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("good %d: %v", i, err)
		}
	}
	bad := map[string]vip.Config{
		"no vips":          {},
		"invalid prefix":   {VIPs: []vip.VIP{{Interface: "eth0"}}},
		"no interface":     {VIPs: []vip.VIP{{Prefix: vipA}}},
		"twice":            {VIPs: []vip.VIP{ok, {Prefix: netip.MustParsePrefix("198.51.100.100/32"), Interface: "eth1"}}},
		"sub-second life":  {VIPs: []vip.VIP{ok}, Lifetime: 500 * time.Millisecond},
		"renew too slow":   {VIPs: []vip.VIP{ok}, Lifetime: 2 * time.Second, RenewEvery: 1500 * time.Millisecond},
		"negative refresh": {VIPs: []vip.VIP{ok}, Announce: vip.Announce{Refresh: -time.Second}},
		"placed":           {VIPs: []vip.VIP{{Prefix: vipA, Interface: "eth0", Policy: ownership.Placed}}},
		"repeated cand":    {VIPs: []vip.VIP{{Prefix: vipA, Interface: "eth0", Candidates: []cluster.NodeID{"n1", "n1"}}}},
		"check no run":     {VIPs: []vip.VIP{ok}, Checks: []vip.Check{{Name: "sip"}}},
		"check negative":   {VIPs: []vip.VIP{ok}, Checks: []vip.Check{{Name: "sip", Run: run, Fall: -1}}},
	}
	for name, c := range bad {
		if err := c.Validate(); !errors.Is(err, vip.ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}
}

func TestResourceName(t *testing.T) {
	v := vip.VIP{Prefix: netip.MustParsePrefix("2001:db8::100/64")}
	if got := v.Resource(); got != "vip/2001:db8::100" {
		t.Fatalf("resource %q", got)
	}
}
