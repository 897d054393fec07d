//go:build soak

package main

// Under -tags soak the end-to-end test registers 1000 users (issue 11).
func init() { e2eUsers = 1000 }
