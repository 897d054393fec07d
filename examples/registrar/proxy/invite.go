package proxy

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/dialog"
)

var itoa = strconv.Itoa

// onInvite handles an INVITE the CPS limiter admitted. A re-INVITE (To tag)
// is routed like any in-dialog request; an initial one is looked up in the
// location store and forwarded to the best binding this node can reach,
// trying the next on a transport failure.
func (p *Proxy) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if hasTag(req.To()) {
		p.onRouted(req, tx)
		return
	}
	p.m.invites.Add(1)
	if !p.cfg.NoCallTracking { // else no limiter ran
		p.m.cpsAllowed.Add(1)
	}
	aor, err := p.aorOf(&req.Recipient)
	if err != nil {
		p.m.badRequests.Add(1)
		p.respond(tx, req, 400, "Bad Request-URI")
		return
	}
	targets := p.targets(p.b.Store.Lookup(aor, nil))
	if len(targets) == 0 {
		if len(p.b.Store.Lookup(aor, nil)) == 0 {
			p.m.notFound.Add(1)
			p.respond(tx, req, 404, "Not Found")
		} else {
			p.m.unavailable.Add(1)
			p.respond(tx, req, 480, "Temporarily Unavailable")
		}
		return
	}
	id, err := p.calls.Invite(req)
	switch {
	case errors.Is(err, dialog.ErrEnded):
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	case err != nil:
		p.m.badRequests.Add(1)
		p.respond(tx, req, 400, "Malformed Dialog Headers")
		return
	}
	p.calls.AddProfile(id, ProfileAll, "")
	p.calls.AddProfile(id, ProfileCallerDomain, req.From().Address.Host)

	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.InviteTimeout)
	defer cancel()
	cancelled := make(chan struct{})
	var once sync.Once
	tx.OnCancel(func(c *sip.Request) {
		p.calls.Request(c)
		once.Do(func() { close(cancelled) })
	})
	code, reason := 480, "Temporarily Unavailable"
	for _, t := range targets {
		final, sent := p.relayInvite(ctx, tx, p.forwardInvite(req, t), cancelled)
		if final {
			return
		}
		if sent {
			// A response was relayed or the call was cancelled: not a
			// transport failure, so no other binding is tried.
			code, reason = 408, "Request Timeout"
			break
		}
	}
	p.calls.Reject(id, code)
	p.respond(tx, req, code, reason)
}

// relayInvite sends fwd in a client transaction and relays its responses
// up tx until a final one. final reports that a final response went up;
// sent that the callee answered at all or the caller cancelled, so the
// caller must not try another binding.
func (p *Proxy) relayInvite(ctx context.Context, tx sip.ServerTransaction, fwd *sip.Request, cancelled <-chan struct{}) (final, sent bool) {
	cltx, err := p.cli.TransactionRequest(ctx, fwd, sipgo.ClientRequestAddVia)
	if err != nil {
		p.log.Debug("proxy: forwarding INVITE", "to", fwd.Destination(), "err", err)
		return false, false
	}
	p.m.forwarded.Add(1)
	defer cltx.Terminate()
	for {
		select {
		case res := <-cltx.Responses():
			if res.StatusCode == 100 {
				sent = true // hop by hop: the callee is alive, sipgo sent ours
				continue
			}
			sent = true
			p.calls.Response(res)
			res.RemoveHeader("Via")
			if err := tx.Respond(res); err != nil {
				p.log.Debug("proxy: relaying response", "code", res.StatusCode, "err", err)
			}
			if res.StatusCode >= 200 {
				return true, true
			}
		case <-cancelled:
			cancelled = nil
			// sipgo has answered the CANCEL and sent 487 upstream; the callee
			// is told with a CANCEL of its own and answers the INVITE with
			// 487, which ends the dialog as cancelled.
			p.sendCancel(fwd)
			sent = true
		case <-cltx.Done():
			if sent {
				return false, true
			}
			return false, false // no response at all: try the next binding
		case <-ctx.Done():
			p.sendCancel(fwd)
			return false, true
		}
	}
}

// sendCancel cancels a forwarded INVITE (RFC 3261 §9.1): same Request-URI,
// top Via (branch), Route, From, To, Call-ID and CSeq number. It is sent
// here, from the handler, so Close finds it sent before the listening
// socket closes; its response is awaited in the background so the handler
// is not held up. A proxy that is closing sends it once and waits no more.
func (p *Proxy) sendCancel(inv *sip.Request) {
	c := sip.NewRequest(sip.CANCEL, inv.Recipient)
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	ctl, err := p.cli.TransactionRequest(ctx, c)
	if err != nil {
		cancel()
		p.log.Debug("proxy: sending CANCEL", "err", err)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer cancel()
		defer ctl.Terminate()
		select {
		case <-ctl.Responses():
		case <-ctl.Done():
		case <-ctx.Done():
		}
	}()
}

// onCancel answers a CANCEL that matched no INVITE in progress here (sipgo
// handles those that match): RFC 3261 §16.10 says a stateful proxy that
// has no matching transaction answers 481.
func (p *Proxy) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	p.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}
