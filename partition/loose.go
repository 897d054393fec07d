package partition

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Requests inside a dialog, and requests that carry a route set, are routed
// as RFC 3261 §16.4 and §16.12 say rather than by key: the dialog's path
// was fixed when it was set up (each forwarding node put itself in
// Record-Route), and it must hold even after the key's placement changed,
// since the call's state lives on the node that served the INVITE.

// routeURI is the URI of a Route header, parsed or generic.
func routeURI(h sip.Header) (sip.Uri, error) {
	if rh, ok := h.(*sip.RouteHeader); ok {
		return rh.Address, nil
	}
	var u sip.Uri
	if _, err := sip.ParseAddressValue(h.Value(), &u, nil); err != nil {
		return u, fmt.Errorf("%w: Route %q: %w", ErrBadRoute, h.Value(), err)
	}
	return u, nil
}

// uriHostPort is where a URI sends a request: host:port, the transport's
// default port when it names none.
func uriHostPort(u sip.Uri, transport string) string {
	port := u.Port
	if port == 0 {
		if t := u.UriParams.GetOr("transport", ""); t != "" {
			transport = t
		}
		port = sip.DefaultPort(transport)
	}
	return net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))
}

// isSelf reports whether u addresses this node's SIP proxy.
func (r *Router) isSelf(u sip.Uri, transport string) bool {
	if r.cfg.IsSelf != nil {
		return r.cfg.IsSelf(u)
	}
	self, ok := r.cfg.Addr(r.p.LocalID())
	if !ok {
		return false
	}
	if h, p, err := net.SplitHostPort(self); err == nil {
		self = net.JoinHostPort(h, p)
	}
	return strings.EqualFold(uriHostPort(u, transport), self)
}

// inDialog reports whether req belongs to a dialog (its To has a tag).
func inDialog(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params.Has("tag")
}

// looseRoute decides a request that is routed by its route set or its
// dialog: ok is false for the requests routed by key (out of a dialog,
// with no Route left once this node's own is set aside).
//
//   - A Route left after this node's own: forward to it (§16.12).
//   - No Route left, in a dialog, Request-URI is this node: the dialog
//     lives here; serve it locally, whoever holds the key now.
//   - No Route left, in a dialog, this node's Route was on top: forward to
//     the Request-URI, the dialog's remote target (§16.6).
//   - In a dialog but this node is on neither its route nor its target:
//     refused, so the farm is no open relay for in-dialog requests.
func (r *Router) looseRoute(req *sip.Request) (d Decision, ok bool, err error) {
	routes := req.GetHeaders("Route")
	popped := false
	if len(routes) > 0 {
		u, err := routeURI(routes[0])
		if err != nil {
			return Decision{Loose: true}, true, err
		}
		if r.isSelf(u, req.Transport()) {
			routes, popped = routes[1:], true
		}
	}
	d = Decision{Loose: true, Owner: r.p.LocalID()}
	switch {
	case len(routes) > 0:
		u, err := routeURI(routes[0])
		if err != nil {
			return d, true, err
		}
		if !u.UriParams.Has("lr") {
			return d, true, fmt.Errorf("%w: next hop %s is a strict router (no ;lr)", ErrBadRoute, u.String())
		}
		d.Owner, d.Addr = "", uriHostPort(u, req.Transport())
		return d, true, nil
	case !inDialog(req):
		return Decision{}, false, nil
	case r.isSelf(req.Recipient, req.Transport()):
		d.Local = true
		return d, true, nil
	case popped:
		d.Owner, d.Addr = "", uriHostPort(req.Recipient, req.Transport())
		return d, true, nil
	}
	return d, true, fmt.Errorf("%w: in-dialog request for %s", ErrNotOnRoute, req.Recipient.Addr())
}

// popSelfRoute removes this node's own Route entry from the top of req
// (§16.4), so the next hop sees the route set that is left.
func (r *Router) popSelfRoute(req *sip.Request) {
	if h := req.Route(); h != nil && r.isSelf(h.Address, req.Transport()) {
		req.RemoveHeader("Route")
	}
}
