//go:build !soak

package cdr

// Sizes of the reliability runs; `go test -tags soak` makes them bigger.
const (
	killRecords = 10000
	killTimes   = 5
	crashRuns   = 12
)
