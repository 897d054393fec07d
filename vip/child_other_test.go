//go:build !linux

package vip_test

func childMain() int { return 2 }
