package vip

import (
	"context"
	"time"
)

// Backend does the owner's side of a VIP on this host. The Manager calls it
// from one goroutine per VIP, so calls for one VIP never overlap; calls for
// different VIPs may run concurrently. Every call gets a context bounded by
// Config.BackendTimeout.
type Backend interface {
	// Add puts the address up, or renews it if it is up, so that it stays
	// for lifetime after this call unless renewed again. A backend that
	// cannot bound an address's life (a cloud API) ignores lifetime.
	Add(ctx context.Context, v VIP, lifetime time.Duration) error
	// Remove takes the address down. Removing an address that is not
	// there is not an error: the Manager removes stale copies at start-up.
	Remove(ctx context.Context, v VIP) error
	// Announce sends one gratuitous ARP (IPv4) or unsolicited neighbour
	// advertisement (IPv6) for the address; the Manager paces bursts.
	Announce(ctx context.Context, v VIP) error
}

// FuncBackend is a Backend made of functions, for a cloud API that moves an
// address between instances (assign a secondary private IP, re-point an
// elastic IP) or for an external script. A nil field does nothing.
//
// A cloud assignment has no kernel lifetime: a killed holder keeps the
// assignment until the next holder takes it over, so the API's move must be
// atomic (it is on the major clouds: assigning an address to one instance
// unassigns it from the other).
type FuncBackend struct {
	AddFunc      func(ctx context.Context, v VIP, lifetime time.Duration) error
	RemoveFunc   func(ctx context.Context, v VIP) error
	AnnounceFunc func(ctx context.Context, v VIP) error
}

// Add calls AddFunc.
func (f FuncBackend) Add(ctx context.Context, v VIP, lifetime time.Duration) error {
	if f.AddFunc == nil {
		return nil
	}
	return f.AddFunc(ctx, v, lifetime)
}

// Remove calls RemoveFunc.
func (f FuncBackend) Remove(ctx context.Context, v VIP) error {
	if f.RemoveFunc == nil {
		return nil
	}
	return f.RemoveFunc(ctx, v)
}

// Announce calls AnnounceFunc.
func (f FuncBackend) Announce(ctx context.Context, v VIP) error {
	if f.AnnounceFunc == nil {
		return nil
	}
	return f.AnnounceFunc(ctx, v)
}

var _ Backend = FuncBackend{}

// Prober is an optional Backend ability, found by type assertion: ask the
// link whether another host still answers for an address before taking it.
//
// It closes the one gap the kernel lifetime leaves: when only a holder's
// process dies (its host stays up), its address stays in the kernel until
// valid_lft runs out, which is longer than the ownership layer's
// reassignment delay. The next holder probes first and adds the address
// only once nobody answers for it, so the two hosts never both have it up.
// A dead host or a cut link does not answer, and costs only the probe's
// wait.
type Prober interface {
	// InUse probes for v's address on its interface for at most wait and
	// reports whether another host answered for it. A backend that cannot
	// probe this kind of address reports false.
	InUse(ctx context.Context, v VIP, wait time.Duration) (bool, error)
}
