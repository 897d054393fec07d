//go:build soak

package raftowner

// soakMinRounds is the least number of TestRandomFaults rounds under
// -tags soak.
const soakMinRounds = 1000
