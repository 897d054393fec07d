package vip

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/ownership"
)

// runner follows one VIP. Its loop is the only goroutine that calls the
// backend for the VIP, so an address is never added and removed at once.
type runner struct {
	m    *Manager
	v    VIP
	res  string
	kick chan struct{}
	isUp atomic.Bool // for Stats

	up      bool // the address may be up here: added and not yet removed
	epoch   ownership.Epoch
	lastAdd time.Time // last successful Add, for the kernel expiry bound
	busy    time.Time // when probes first found the address in use; zero when not
	renewAt time.Time
	retryAt time.Time // after a failed backend call; zero when none

	burstLeft int
	nextFrame time.Time
	secondAt  time.Time // zero when no second burst is due
	refreshAt time.Time // zero when refresh is off
}

func (r *runner) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *runner) loop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-r.m.quit:
			if r.up {
				r.release(true)
			}
			return
		case <-r.kick:
		case <-t.C:
		}
		wait := r.step()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// step brings the address in line with the ownership layer and returns how
// long to sleep before the next look.
func (r *runner) step() time.Duration {
	cfg := &r.m.cfg
	now := cfg.Now()
	// Held is the authority, read right before acting on it: an Acquired
	// or Lost event only says when to look.
	epoch, held := r.m.own.Held(r.res)
	if !held {
		r.busy = time.Time{}
	}
	switch {
	case !held && r.up:
		if r.retryAt.IsZero() || !now.Before(r.retryAt) {
			r.release(false)
		}
	case held && (!r.up || epoch != r.epoch):
		if r.retryAt.IsZero() || !now.Before(r.retryAt) {
			if !r.up && !r.probeClear(now) {
				break
			}
			// Held again right before the add: the probe took a while.
			if epoch, held = r.m.own.Held(r.res); held {
				r.acquire(epoch, cfg.Now())
			}
		}
	case held && !now.Before(r.renewAt):
		if err := r.call(func(ctx context.Context) error { return r.m.be.Add(ctx, r.v, cfg.Lifetime) }); err != nil {
			r.fail("renew", err, now)
			r.renewAt = r.retryAt
		} else {
			r.m.renewals.Add(1)
			r.lastAdd, r.renewAt, r.retryAt = now, now.Add(cfg.RenewEvery), time.Time{}
		}
	}
	if held && r.up {
		r.announceDue(now)
	}
	return r.next(now)
}

func (r *runner) acquire(epoch ownership.Epoch, now time.Time) {
	cfg := &r.m.cfg
	if err := r.call(func(ctx context.Context) error { return r.m.be.Add(ctx, r.v, cfg.Lifetime) }); err != nil {
		r.fail("add", err, now)
		return
	}
	r.m.adds.Add(1)
	r.up, r.epoch, r.lastAdd, r.retryAt = true, epoch, now, time.Time{}
	r.isUp.Store(true)
	r.renewAt = now.Add(cfg.RenewEvery)
	r.startBurst(now)
	r.secondAt, r.refreshAt = time.Time{}, time.Time{}
	if cfg.Announce.SecondBurst > 0 {
		r.secondAt = now.Add(cfg.Announce.SecondBurst)
	}
	if cfg.Announce.Refresh > 0 {
		r.refreshAt = now.Add(cfg.Announce.Refresh)
	}
	r.announceDue(now)
	r.m.log.Info("vip: up", "vip", r.v.String(), "epoch", epoch)
	r.m.hooks.push(Change{VIP: r.v, Up: true, Epoch: epoch, At: now})
}

// release takes the address down, then tells the hook. When removal fails
// the hook waits until the kernel lifetime has surely run out (the kernel
// checks lifetimes on a one-second timer) unless final, when nobody will
// try again.
func (r *runner) release(final bool) {
	cfg := &r.m.cfg
	r.burstLeft, r.secondAt, r.refreshAt = 0, time.Time{}, time.Time{}
	err := r.call(func(ctx context.Context) error { return r.m.be.Remove(ctx, r.v) })
	now := cfg.Now()
	expired := !now.Before(r.lastAdd.Add(ceilSecond(cfg.Lifetime) + time.Second))
	if err != nil {
		r.fail("remove", err, now)
		if !final && !expired {
			return
		}
	} else {
		r.m.removals.Add(1)
	}
	r.up, r.retryAt = false, time.Time{}
	r.isUp.Store(false)
	r.m.log.Info("vip: down", "vip", r.v.String(), "epoch", r.epoch)
	r.m.hooks.push(Change{VIP: r.v, Up: false, Epoch: r.epoch, At: now})
}

// probeClear reports whether the address may be added: nobody answered a
// probe for it, the backend cannot probe, or it has been answered for so
// long that no stale copy of a killed holder can be the one answering.
func (r *runner) probeClear(now time.Time) bool {
	cfg := &r.m.cfg
	p, ok := r.m.be.(Prober)
	if !ok || cfg.ProbeWait < 0 {
		return true
	}
	var inUse bool
	err := r.call(func(ctx context.Context) error {
		var err error
		inUse, err = p.InUse(ctx, r.v, cfg.ProbeWait)
		return err
	})
	switch {
	case err != nil:
		// A probe that cannot run must not keep the VIP down.
		r.m.errors.Add(1)
		r.m.log.Warn("vip: probe failed, adding anyway", "vip", r.v.String(), "err", err)
	case !inUse:
	case r.busy.IsZero():
		r.busy = now
		fallthrough
	case now.Sub(r.busy) < ceilSecond(cfg.Lifetime)+2*time.Second:
		r.m.probeConflicts.Add(1)
		r.m.log.Info("vip: another host still answers for the address, waiting", "vip", r.v.String(),
			"since", now.Sub(r.busy))
		r.retryAt = now.Add(max(cfg.ProbeWait, 10*time.Millisecond))
		return false
	default:
		r.m.errors.Add(1)
		r.m.log.Error("vip: another host keeps answering for the address; adding it anyway", "vip", r.v.String(),
			"since", now.Sub(r.busy))
	}
	r.busy, r.retryAt = time.Time{}, time.Time{}
	return true
}

func (r *runner) startBurst(now time.Time) {
	if r.m.cfg.Announce.Count > 0 {
		r.burstLeft, r.nextFrame = r.m.cfg.Announce.Count, now
	}
}

// announceDue sends the frames that are due.
func (r *runner) announceDue(now time.Time) {
	a := &r.m.cfg.Announce
	if !r.secondAt.IsZero() && !now.Before(r.secondAt) {
		r.secondAt = time.Time{}
		r.startBurst(now)
	}
	if !r.refreshAt.IsZero() && !now.Before(r.refreshAt) {
		r.refreshAt = now.Add(a.Refresh)
		r.startBurst(now)
	}
	for r.burstLeft > 0 && !now.Before(r.nextFrame) {
		r.burstLeft--
		if err := r.call(func(ctx context.Context) error { return r.m.be.Announce(ctx, r.v) }); err != nil {
			r.m.errors.Add(1)
			r.m.log.Warn("vip: announce failed", "vip", r.v.String(), "err", err)
		} else {
			r.m.announcements.Add(1)
		}
		if a.Interval > 0 {
			// From after the send, so frames are at least Interval apart
			// however long the backend took.
			r.nextFrame = r.m.cfg.Now().Add(a.Interval)
			return
		}
	}
}

// next is the time until the earliest thing due.
func (r *runner) next(now time.Time) time.Duration {
	cfg := &r.m.cfg
	at := now.Add(cfg.RenewEvery)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(at) {
			at = t
		}
	}
	if r.up {
		earlier(r.renewAt)
		if r.burstLeft > 0 {
			earlier(r.nextFrame)
		}
		earlier(r.secondAt)
		earlier(r.refreshAt)
	}
	earlier(r.retryAt)
	return max(at.Sub(now), time.Millisecond)
}

func (r *runner) call(f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.m.cfg.BackendTimeout)
	defer cancel()
	return f(ctx)
}

func (r *runner) fail(op string, err error, now time.Time) {
	r.m.errors.Add(1)
	r.m.log.Warn("vip: backend failed", "op", op, "vip", r.v.String(), "err", err)
	r.retryAt = now.Add(r.m.cfg.RenewEvery / 4)
}

// ceilSecond rounds d up to whole seconds, as lifetimes reach the kernel.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}
