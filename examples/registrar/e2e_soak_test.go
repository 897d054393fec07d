//go:build soak

package main

// Under -tags soak the end-to-end test registers 10000 users.
func init() { e2eUsers = 10000 }
