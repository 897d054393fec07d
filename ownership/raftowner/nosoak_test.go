//go:build !soak

package raftowner_test

const soakMinRounds = 0
