//go:build !soak

package cluster_test

import "time"

// chaosBudget is the wall time TestChaos spends on random rounds in the
// default suite; -tags soak runs for much longer.
const chaosBudget = 8 * time.Second
