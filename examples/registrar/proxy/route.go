package proxy

import (
	"context"
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
// it). An ACK is never answered, so a malformed one is dropped.
func (p *Proxy) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if !p.enter() {
		return
	}
	defer p.hwg.Done()
	if code, _ := validate(req); code != 0 {
		p.m.badRequests.Add(1)
		return
	}
	p.b.Dialogs.Request(req)
	fwd, ok := p.routed(req)
	if !ok {
		return
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
		p.b.Dialogs.Request(req) // BYE ends the dialog here, whoever sent it
	}
	fwd, ok := p.routed(req)
	if !ok {
		p.respond(tx, req, 404, "Not Found")
		return
	}
	if fwd.Route() == nil && !hasTag(req.To()) {
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
