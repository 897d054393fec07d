//go:build !soak

package raftowner

const soakMinRounds = 0
