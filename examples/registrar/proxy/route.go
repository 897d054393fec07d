package proxy

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// inDialogTimeout bounds a forwarded non-INVITE transaction (64×T1).
const inDialogTimeout = 32 * time.Second

// routed returns the copy of req to send on by loose routing (RFC 3261
// §16.4–16.6): this proxy's own Route entries popped, one hop fewer, and the
// next hop's transport taken from the first remaining Route or else the
// Request-URI. ok is false when nothing is left to route to (the request
// names only this proxy).
func (p *Proxy) routed(req *sip.Request) (fwd *sip.Request, ok bool) {
	fwd = req.Clone()
	p.popOwnRoutes(fwd)
	next := &fwd.Recipient
	if r := fwd.Route(); r != nil {
		next = &r.Address
	} else if p.isSelf(next) {
		return nil, false
	}
	decMaxForwards(fwd)
	tp := strings.ToUpper(req.Transport())
	if next.UriParams != nil {
		if v, ok := next.UriParams.Get("transport"); ok && v != "" {
			tp = strings.ToUpper(v)
		}
	}
	fwd.SetTransport(tp)
	fwd.SetDestination("")
	return fwd, true
}

// onAck forwards the ACK of a 2xx, statelessly as RFC 3261 §16.11 has it (the
// ACK of a failure response is hop by hop and sipgo's transaction absorbs
// it). An ACK is never answered, so a malformed or stray one is dropped.
func (p *Proxy) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if !p.enter() {
		return
	}
	defer p.hwg.Done()
	if code, _ := validate(req); code != 0 {
		p.m.badRequests.Add(1)
		return
	}
	// An ACK this proxy must pass on belongs to a dialog it record-routed,
	// so its top Route names this proxy. One without is the ACK of a failure
	// response whose transaction is gone (or that sipgo did not match):
	// routing it by its Request-URI would send it to the callee's domain.
	if r := req.Route(); r == nil || !p.isSelf(&r.Address) {
		return
	}
	p.calls.Request(req)
	fwd, ok := p.routed(req)
	if !ok || (fwd.Route() == nil && !isIP(fwd.Recipient.Host)) {
		return // never resolve a name for an ACK (see onRouted)
	}
	p.m.inDialog.Add(1)
	if err := p.cli.WriteRequest(fwd, sipgo.ClientRequestAddVia); err != nil {
		p.log.Debug("proxy: forwarding ACK", "to", fwd.Destination(), "err", err)
	}
}

// onRouted forwards BYE, re-INVITE and every other request by its Route
// set, statefully, relaying the responses. An out-of-dialog request with no
// Route left (MESSAGE, SUBSCRIBE to a user) goes to the user's best binding
// like an INVITE, without a dialog.
func (p *Proxy) onRouted(req *sip.Request, tx sip.ServerTransaction) {
	if req.Method != sip.INVITE {
		p.calls.Request(req) // BYE ends the dialog here, whoever sent it
	}
	fwd, ok := p.routed(req)
	if !ok {
		p.respond(tx, req, 404, "Not Found")
		return
	}
	// With no Route left, a request goes by its Request-URI. The proxy only
	// sends to addresses it learned (bindings, Route, contacts), never
	// resolving a name: a Request-URI in a domain (an out-of-dialog request,
	// or a UA's in-dialog request that lost its route set) goes to the
	// user's binding instead.
	if fwd.Route() == nil && (!hasTag(req.To()) || !isIP(fwd.Recipient.Host)) {
		aor, err := p.aorOf(&req.Recipient)
		if err != nil {
			p.respond(tx, req, 400, "Bad Request-URI")
			return
		}
		ts := p.targets(p.b.Store.Lookup(aor, nil))
		if len(ts) == 0 {
			p.m.notFound.Add(1)
			p.respond(tx, req, 404, "Not Found")
			return
		}
		fwd = p.forwardInvite(req, ts[0])
		fwd.RemoveHeader("Record-Route") // no dialog to stay in
	} else {
		p.m.inDialog.Add(1)
	}
	ctx, cancel := context.WithTimeout(p.ctx, inDialogTimeout)
	defer cancel()
	cltx, err := p.cli.TransactionRequest(ctx, fwd, sipgo.ClientRequestAddVia)
	if err != nil {
		p.log.Debug("proxy: forwarding", "method", req.Method, "to", fwd.Destination(), "err", err)
		p.respond(tx, req, 503, "Next Hop Unreachable")
		return
	}
	defer cltx.Terminate()
	for {
		select {
		case res := <-cltx.Responses():
			if res.StatusCode == 100 {
				continue
			}
			res.RemoveHeader("Via")
			if err := tx.Respond(res); err != nil {
				p.log.Debug("proxy: relaying response", "code", res.StatusCode, "err", err)
			}
			if res.StatusCode >= 200 {
				return
			}
		case <-cltx.Done():
			p.respond(tx, req, 408, "Request Timeout")
			return
		case <-ctx.Done():
			p.respond(tx, req, 408, "Request Timeout")
			return
		}
	}
}

// ForwardStray forwards, statelessly, a response that matched no client
// transaction (RFC 3261 §16.7 is for the stateful case; this is the
// retransmitted 2xx of an INVITE whose transaction already ended, which the
// caller needs until its ACK gets through): when the top Via is this
// proxy's, it is removed and the response goes to the next Via.
//
// Concurrency: called by sipgo's transaction layer, concurrently.
func (p *Proxy) ForwardStray(res *sip.Response) {
	v, cseq := res.Via(), res.CSeq()
	// Only a 2xx to an INVITE may outlive its transaction. sipgo handles
	// each response on its own goroutine, so a 180 may also come in after
	// the 200 that ended the transaction: passing it on would reach the
	// caller after the answer.
	if v == nil || cseq == nil || cseq.MethodName != sip.INVITE || !res.IsSuccess() {
		return
	}
	// Counted as a handler, so Close waits for it: a write after the UA
	// closed would open a socket nothing closes.
	if !p.enter() {
		return
	}
	defer p.hwg.Done()
	port := v.Port
	if port == 0 {
		port = int(sip.DefaultPort(v.Transport))
	}
	if !p.self[v.Host+":"+itoa(port)] {
		return
	}
	res.RemoveHeader("Via")
	if res.Via() == nil {
		return
	}
	res.SetDestination("")
	if err := p.srv.WriteResponse(res); err != nil {
		p.log.Debug("proxy: forwarding a stray response", "code", res.StatusCode, "err", err)
	}
}

// isIP reports whether a URI host is an IP literal.
func isIP(host string) bool {
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}
