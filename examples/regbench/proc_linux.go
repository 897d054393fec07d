package main

import "syscall"

// childAttr puts a child in its own process group (so a signal reaches its
// workers too) and has the kernel kill it if regbench dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
