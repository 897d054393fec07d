package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sipha/sipha/cluster/clustertest"
)

// TestDemo runs the whole demo (10 phones, smaller CDR phases) and checks
// its report: real SIP calls before, across and after the kill, the CPS
// limit, a failover, exactly one holder per resource, one CDR per call and
// no CDR lost.
func TestDemo(t *testing.T) {
	clustertest.CheckLeaks(t)
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil, 20, 10); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)
	for _, want := range []string{
		"ok   registrations: 10 phones registered through ",
		"    10/10 calls answered and hung up",
		"ok   CPS limit before the kill: ",
		"ok   CPS limit after the kill: ",
		"failover: vip/198.51.100.10 moved",
		"ok   partition: n1's ", // its tenants served by survivors
		"ok   partition: the other ",
		"ok   first new call through a survivor to a phone registered on ",
		"ok   the call up through ",
		"ok   every resource held by exactly one live node after the kill",
		"ok   the 10 bindings registered through ",
		"ok   a call up through ", // through the victim, ended by its adopter at its limit
		`(reason "max-duration")`,
		"ok   a call through ",
		// 10 to the phones, 2 up across the kill, the first after it, 1
		// through the restarted node.
		"ok   call CDRs: 14 calls finished, each with exactly one CDR ID at the collectors (0 missing, 0 with a second ID)",
		"ok   CDRs: 160 synthetic posted, 160 collected", // 3 nodes × 20 × 2 phases + 2 survivors × 20
		"ok   the backup collector took CDRs",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(report, "FAIL") {
		t.Errorf("report has a failed check")
	}
}
