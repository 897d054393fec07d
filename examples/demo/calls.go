package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/siphatest"
)

// phones are the demo's softphones: callees that register and answer, a
// caller, and a flooder that sends INVITEs beyond the CPS limit.
type phones struct {
	callees []*phone
	caller  *phone
	flooder *phone
	next    int // the callee the caller dials next

	mu       sync.Mutex
	finished []dialog.ID // calls that ended (hung up, or by the cluster): one CDR each
}

func startPhones(callees int) (*phones, error) {
	ps := &phones{}
	for i := range callees + 2 {
		var user string
		switch i {
		case callees:
			user = "caller"
		case callees + 1:
			user = "flooder"
		default:
			user = fmt.Sprintf("user%02d", i+1)
		}
		p, err := newPhone(user)
		if err != nil {
			ps.close()
			return nil, err
		}
		switch user {
		case "caller":
			ps.caller = p
		case "flooder":
			ps.flooder = p
		default:
			p.answer()
			ps.callees = append(ps.callees, p)
		}
	}
	return ps, nil
}

func (ps *phones) close() {
	for _, p := range append(ps.callees, ps.caller, ps.flooder) {
		if p != nil {
			p.close()
		}
	}
}

// registerAll registers every callee through the proxy at via.
func (ps *phones) registerAll(ctx context.Context, via string) error {
	for _, p := range ps.callees {
		if err := p.register(ctx, via); err != nil {
			return err
		}
	}
	return nil
}

// bindings counts the callees node n has a binding of.
func (ps *phones) bindings(n *siphatest.Node) int {
	k := 0
	for _, p := range ps.callees {
		aor := p.aor()
		if len(n.Locations.Store.Lookup(aor.String(), nil)) == 1 {
			k++
		}
	}
	return k
}

// dial places a call from the caller to the next callee through via,
// trying again for up to callTimeout when the CPS limit refuses it (503),
// as a UA honouring Retry-After would. It returns the answered call.
func (ps *phones) dial(ctx context.Context, via string) (*sipgo.DialogClientSession, dialog.ID, error) {
	callee := ps.callees[ps.next%len(ps.callees)]
	ps.next++
	deadline := time.Now().Add(callTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		s, id, err := ps.caller.call(cctx, callee.aor(), via)
		cancel()
		var re *refusedError
		if err == nil || !errors.As(err, &re) || re.code != 503 || time.Now().After(deadline) {
			return s, id, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hangUp ends an answered call with BYE and records it as finished.
func (ps *phones) hangUp(ctx context.Context, s *sipgo.DialogClientSession, id dialog.ID) error {
	if err := hangUp(ctx, s); err != nil {
		return fmt.Errorf("BYE of %s: %w", id.CallID, err)
	}
	ps.ended(id)
	return nil
}

// ended records a call the cluster ended (no BYE) as finished.
func (ps *phones) ended(id dialog.ID) {
	ps.mu.Lock()
	ps.finished = append(ps.finished, id)
	ps.mu.Unlock()
}

// callEach places n calls through via one after the other, each answered
// and hung up, at most callRate a second, and prints progress.
func (ps *phones) callEach(ctx context.Context, out io.Writer, via string, n int) error {
	const callRate = 20
	tick := time.NewTicker(time.Second / callRate)
	defer tick.Stop()
	start := time.Now()
	for i := range n {
		s, id, err := ps.dial(ctx, via)
		if err != nil {
			return fmt.Errorf("call %d through %s: %w", i+1, via, err)
		}
		if err := ps.hangUp(ctx, s, id); err != nil {
			return err
		}
		if (i+1)%5 == 0 {
			fmt.Fprintf(out, "    %2d/%d calls answered and hung up (%v)\n", i+1, n, ms(time.Since(start)))
		}
		<-tick.C
	}
	return nil
}

// flood sends INVITEs to an unregistered user through the proxies at vias
// from 8 senders for d: each one the limiter admits gets 404, each one it
// refuses 503 with Retry-After.
func (ps *phones) flood(ctx context.Context, vias []string, d time.Duration) (admitted, refused, other int, elapsed time.Duration) {
	var a, r, o atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Since(start) < d; i++ {
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				code, err := ps.flooder.ping(cctx, "nobody", vias[(w+i)%len(vias)])
				cancel()
				switch {
				case err == nil && code == 404:
					a.Add(1)
				case err == nil && code == 503:
					r.Add(1)
				default:
					o.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(a.Load()), int(r.Load()), int(o.Load()), time.Since(start)
}

// cpsBound is the most the cluster may admit in elapsed: the rate with
// the 10 % that package ratelimit allows while shares move (its accuracy
// test: no window around a kill or a demand shift above 1.10 × the limit;
// the demo's second flood starts right after a kill), plus the bucket's
// burst (Rate × 100 ms), plus at least one call per node.
func cpsBound(elapsed time.Duration) float64 {
	return 1.1*cps*elapsed.Seconds() + cps/10 + 3
}

// firstCall places calls through the survivors in turn, from the moment
// of the kill, until one is answered; it hangs that one up and reports
// when it was answered and how many attempts failed before it.
func (ps *phones) firstCall(ctx context.Context, vias []string) (time.Time, int, error) {
	failed := 0
	for i := 0; ; i++ {
		s, id, err := ps.dial(ctx, vias[i%len(vias)])
		if err == nil {
			answered := time.Now()
			return answered, failed, ps.hangUp(ctx, s, id)
		}
		failed++
		select {
		case <-ctx.Done():
			return time.Time{}, failed, err
		case <-time.After(10 * time.Millisecond):
		}
	}
}
