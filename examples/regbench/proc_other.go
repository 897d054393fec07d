//go:build !linux

package main

import "syscall"

// childAttr puts a child in its own process group; only Linux can also
// tie its life to regbench's.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
