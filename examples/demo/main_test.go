package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/sipha/sipha/cluster/clustertest"
)

// TestDemo runs the whole demo (smaller CDR phases) and checks its report:
// a failover happened, exactly one holder per resource, no CDR lost.
func TestDemo(t *testing.T) {
	clustertest.CheckLeaks(t)
	var out bytes.Buffer
	if err := run(context.Background(), &out, nil, 20); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)
	for _, want := range []string{
		"failover: vip/198.51.100.10 moved",
		"ok   every resource held by exactly one live node after the kill",
		"ok   CDRs: 160 posted, 160 distinct collected", // 3 nodes × 20 × 2 phases + 2 survivors × 20
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
