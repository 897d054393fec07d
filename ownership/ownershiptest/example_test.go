package ownershiptest_test

import (
	"fmt"
	"time"

	"github.com/sipha/sipha/ownership/ownershiptest"
)

// The History is the fenced downstream: it refuses an action whose epoch
// is below one it already accepted, and flags overlapping holders.
func ExampleHistory() {
	h := ownershiptest.NewHistory()
	fmt.Println(h.Act("vip/a", 1), h.Act("vip/a", 2), h.Act("vip/a", 1))

	t0 := time.Unix(0, 0)
	h.Observe("vip/a", ownershiptest.Observation{Node: "n2", Epoch: 2, Start: t0, End: t0.Add(time.Millisecond)})
	h.Observe("vip/a", ownershiptest.Observation{Node: "n1", Epoch: 1, Start: t0.Add(time.Second), End: t0.Add(time.Second)})
	fmt.Println(len(h.Violations()), "violation")
	// Output:
	// true true false
	// 1 violation
}
