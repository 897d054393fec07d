//go:build !linux

package vip

import (
	"context"
	"errors"
	"time"
)

// Netlink is the Linux Backend; elsewhere NewNetlink fails.
type Netlink struct{}

// NewNetlink returns errors.ErrUnsupported off Linux.
func NewNetlink() (*Netlink, error) { return nil, errors.ErrUnsupported }

func (*Netlink) Close() error                                  { return nil }
func (*Netlink) Add(context.Context, VIP, time.Duration) error { return errors.ErrUnsupported }
func (*Netlink) Remove(context.Context, VIP) error             { return errors.ErrUnsupported }
func (*Netlink) Announce(context.Context, VIP) error           { return errors.ErrUnsupported }
