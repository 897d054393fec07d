package vip_test

import (
	"testing"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/vip"
	"github.com/sipha/sipha/vip/viptest"
)

// A holder whose process dies on a live host leaves its address in the
// kernel until valid_lft runs out, longer than the ownership layer takes
// to hand the VIP on. Modelled here by a holder whose removal fails and
// whose ownership node is killed: the fake keeps its address until the
// lifetime passes. The standby's probe (viptest answers it like a host
// holding the address) must hold its add back until then. With probing
// off the same schedule overlaps, which shows the check can fail.
func TestProbeWaitsForKilledHolderAddress(t *testing.T) {
	for _, tc := range []struct {
		name    string
		probe   time.Duration
		overlap bool
	}{
		{"probe", 0, false},
		{"no probe", -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := func(cluster.NodeID) vip.Config {
				// A 3 s lifetime outlasts any takeover, loaded machine or not.
				return vip.Config{VIPs: []vip.VIP{vipOn(vipA, "n1", "n2")}, Lifetime: 3 * time.Second,
					RenewEvery: 100 * time.Millisecond, ProbeWait: tc.probe}
			}
			p := newPairWithLog(t, viptest.NewLog(nil), cfg)
			p.waitHolder(t, vipA, "n1")
			p.waitSIPLeader(t)
			p.log.Backend("n1").Fail(viptest.OpRemove, viptest.ErrInjected)
			p.c.Kill("n1")
			ownershiptest.WaitFor(t, 15*time.Second, "n2 to add the VIP", func() bool {
				return p.log.Backend("n2").Has(vipA)
			})
			conflicts := p.log.Conflicts()
			if got := len(conflicts) > 0; got != tc.overlap {
				t.Fatalf("overlap %v, want %v: %v", got, tc.overlap, conflicts)
			}
			if n := p.mgrs["n2"].Stats().ProbeConflicts; (n > 0) == tc.overlap {
				t.Fatalf("n2 counted %d probe conflicts", n)
			}
		})
	}
}
