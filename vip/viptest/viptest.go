// Package viptest provides a recording fake of vip.Backend for unit tests:
// several nodes' backends share one Log, which keeps every call in order,
// models the kernel's valid lifetime (an address that is not renewed
// disappears), and notes every moment two nodes had one address up at once.
// Use it where the real kernel cannot be used.
//
// On Linux it also provides Topo, the network-namespace LAN on which the
// vip package's tests run the real netlink backend and examples run whole
// nodes: hosts on one bridge with addresses from 198.51.100.0/24 and
// 2001:db8::/64 only, link control, one `ip monitor` that orders every
// host's address changes, a UDP prober, an ARP capture, and cleanup of the
// namespaces, leftovers of killed test processes included. Tests that use
// it skip without root and fail instead when SIPHA_CI=1.
package viptest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sipha/sipha/vip"
)

// Op kinds recorded in a Log.
const (
	OpAdd      = "add"
	OpRemove   = "remove"
	OpAnnounce = "announce"
	OpHookUp   = "hook-up"
	OpHookDown = "hook-down"
)

// Op is one recorded call.
type Op struct {
	Seq      int
	At       time.Time
	Node     string
	Kind     string
	Prefix   netip.Prefix
	Lifetime time.Duration
	// Err is the error the call returned (injected failures).
	Err error
}

func (o Op) String() string {
	return fmt.Sprintf("#%d %s %s %s", o.Seq, o.Node, o.Kind, o.Prefix)
}

// Log is shared by the backends of one test. Its methods are safe for
// concurrent use.
type Log struct {
	now func() time.Time

	mu        sync.Mutex
	ops       []Op
	backends  map[string]*Backend
	conflicts []string
}

// NewLog returns an empty log reading the clock now (time.Now if nil).
func NewLog(now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{now: now, backends: map[string]*Backend{}}
}

// Backend returns the backend of node, creating it on first use.
func (l *Log) Backend(node string) *Backend {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.backends[node]
	if b == nil {
		b = &Backend{log: l, node: node, expiry: map[netip.Prefix]time.Time{}, fail: map[string]error{}}
		l.backends[node] = b
	}
	return b
}

// Hook returns a vip.Config.Hook that records hook-up and hook-down for
// node, then calls next if it is not nil.
func (l *Log) Hook(node string, next func(vip.Change)) func(vip.Change) {
	return func(c vip.Change) {
		kind := OpHookDown
		if c.Up {
			kind = OpHookUp
		}
		l.mu.Lock()
		l.recordLocked(Op{Node: node, Kind: kind, Prefix: c.VIP.Prefix})
		l.mu.Unlock()
		if next != nil {
			next(c)
		}
	}
}

func (l *Log) recordLocked(o Op) {
	o.Seq, o.At = len(l.ops)+1, l.now()
	l.ops = append(l.ops, o)
}

// Ops returns a copy of every recorded call, in order.
func (l *Log) Ops() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Op(nil), l.ops...)
}

// Filter returns the ops of node (all nodes if "") of the given kinds (all
// if none).
func (l *Log) Filter(node string, kinds ...string) []Op {
	var out []Op
	for _, o := range l.Ops() {
		if node != "" && o.Node != node {
			continue
		}
		if len(kinds) > 0 && !contains(kinds, o.Kind) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// Conflicts lists every add that found the address up, unexpired, on
// another node: two holders at once.
func (l *Log) Conflicts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.conflicts...)
}

// Holders lists the nodes that have p up now, with expiry applied.
func (l *Log) Holders(p netip.Prefix) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []string
	for node, b := range l.backends {
		if exp, ok := b.expiry[p]; ok && now.Before(exp) {
			out = append(out, node)
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ErrInjected is what a backend returns for a failure set with Fail.
var ErrInjected = errors.New("viptest: injected failure")

// Backend is one node's fake. An added address stays up until removed or
// until its lifetime passes without a renewal, as in the kernel.
type Backend struct {
	log  *Log
	node string
	// guarded by log.mu
	expiry map[netip.Prefix]time.Time
	fail   map[string]error
}

var _ vip.Backend = (*Backend)(nil)

// Fail makes calls of kind (OpAdd, OpRemove, OpAnnounce) return err until
// Fail(kind, nil).
func (b *Backend) Fail(kind string, err error) {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	if err == nil {
		delete(b.fail, kind)
		return
	}
	b.fail[kind] = err
}

// Has reports whether this node has p up now.
func (b *Backend) Has(p netip.Prefix) bool {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	exp, ok := b.expiry[p]
	return ok && b.log.now().Before(exp)
}

// Add implements vip.Backend.
func (b *Backend) Add(ctx context.Context, v vip.VIP, lifetime time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	err := b.fail[OpAdd]
	l.recordLocked(Op{Node: b.node, Kind: OpAdd, Prefix: v.Prefix, Lifetime: lifetime, Err: err})
	if err != nil {
		return err
	}
	now := l.now()
	for node, other := range l.backends {
		if exp, ok := other.expiry[v.Prefix]; ok && node != b.node && now.Before(exp) {
			l.conflicts = append(l.conflicts, fmt.Sprintf("op #%d: %s added %s while %s had it until %s",
				len(l.ops), b.node, v.Prefix, node, exp.Format(time.StampMicro)))
		}
	}
	b.expiry[v.Prefix] = now.Add(lifetime)
	return nil
}

// Remove implements vip.Backend.
func (b *Backend) Remove(ctx context.Context, v vip.VIP) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	err := b.fail[OpRemove]
	l.recordLocked(Op{Node: b.node, Kind: OpRemove, Prefix: v.Prefix, Err: err})
	if err != nil {
		return err
	}
	delete(b.expiry, v.Prefix)
	return nil
}

// Announce implements vip.Backend.
func (b *Backend) Announce(ctx context.Context, v vip.VIP) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	err := b.fail[OpAnnounce]
	b.log.recordLocked(Op{Node: b.node, Kind: OpAnnounce, Prefix: v.Prefix, Err: err})
	return err
}

// Put puts p up on this node as if an earlier run had left it there, for
// testing the start-up cleanup.
func (b *Backend) Put(p netip.Prefix, lifetime time.Duration) {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	b.expiry[p] = b.log.now().Add(lifetime)
}

var _ vip.Prober = (*Backend)(nil)

// InUse implements vip.Prober: another node of the log has v's address up
// (with expiry applied), as a real host would answer an ARP probe for it.
// It answers at once instead of listening for wait, and is not recorded
// as an Op.
func (b *Backend) InUse(ctx context.Context, v vip.VIP, wait time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	l := b.log
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for node, other := range l.backends {
		if exp, ok := other.expiry[v.Prefix]; ok && node != b.node && now.Before(exp) {
			return true, nil
		}
	}
	return false, nil
}
