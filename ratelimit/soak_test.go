//go:build soak

package ratelimit_test

import "time"

// Under -tags soak each phase of TestAccuracy runs 40 s (120 s in all).
func init() { accuracyPhase = 40 * time.Second }
