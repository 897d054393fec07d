//go:build soak

package cdr

const (
	killRecords = 100000
	killTimes   = 25
	crashRuns   = 200
)
