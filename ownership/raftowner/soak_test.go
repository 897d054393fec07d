//go:build soak

package raftowner_test

// soakMinRounds is the least number of TestRandomFaults rounds under
// -tags soak.
const soakMinRounds = 1000
