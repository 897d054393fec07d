//go:build soak

package cluster_test

import "time"

const chaosBudget = 10 * time.Minute
