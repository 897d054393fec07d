package proxy

import (
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/usrloc"
)

// target is where one binding is reached from this node.
type target struct {
	uri       sip.Uri   // the new Request-URI: the binding's contact
	transport string    // "UDP", "TCP", ...
	dest      string    // host:port to send to; "" lets the first route decide
	route     []sip.Uri // the binding's Path (RFC 3327), as Route headers
}

// targets picks, best first, the bindings this node can reach:
//
//   - a binding with a Path goes through its edge proxy, which holds the
//     UA's flow: any node can send there;
//   - a UDP binding is sent to the address the REGISTER came from (its NAT
//     mapping), so a UA behind NAT is reached on any node. With a VIP the
//     packet leaves from the address the NAT expects; without one the
//     operator accepts that a symmetric NAT drops it;
//   - a TCP/TLS/WS binding is reached over the UA's own connection, which
//     only the node it registered through holds; another node can open a new
//     connection only when the contact is the address it came from (no NAT).
//
// A binding that fits none of these is skipped; the caller answers 480 when
// that leaves nothing.
func (p *Proxy) targets(bs []usrloc.Binding) []target {
	var out []target
	for i := range bs {
		if t, ok := p.targetOf(&bs[i]); ok {
			out = append(out, t)
		}
	}
	return out
}

func (p *Proxy) targetOf(b *usrloc.Binding) (target, bool) {
	var t target
	if err := sip.ParseUri(b.Contact, &t.uri); err != nil || t.uri.Host == "" {
		return t, false
	}
	t.transport = bindingTransport(b, &t.uri)
	if b.Path != "" {
		for _, v := range splitPath(b.Path) {
			var u sip.Uri
			if err := sip.ParseUri(v, &u); err != nil || u.Host == "" {
				return t, false
			}
			t.route = append(t.route, u)
		}
		return t, true
	}
	contact := t.uri.HostPort()
	if t.uri.Port == 0 {
		contact += ":" + itoa(int(sip.DefaultPort(t.transport)))
	}
	switch {
	case t.transport == "UDP":
		t.dest = b.Received
	case b.Node == p.b.Store.Node():
		t.dest = b.Received // the UA's own connection, kept by sipgo's pool
	case b.Received == "" || b.Received == contact:
		t.dest = contact
	default:
		return t, false
	}
	if t.dest == "" {
		t.dest = contact
	}
	return t, true
}

// bindingTransport is the transport a binding registered over: the
// protocol of its socket ("udp:10.0.0.1:5060"), else its contact's
// transport parameter, else UDP.
func bindingTransport(b *usrloc.Binding, contact *sip.Uri) string {
	if i := strings.IndexByte(b.Socket, ':'); i > 0 {
		return strings.ToUpper(b.Socket[:i])
	}
	if b.Socket != "" {
		return strings.ToUpper(b.Socket)
	}
	if contact.UriParams != nil {
		if v, ok := contact.UriParams.Get("transport"); ok && v != "" {
			return strings.ToUpper(v)
		}
	}
	return "UDP"
}

// splitPath splits the stored Path ("<sip:a;lr>,<sip:b;lr>") into URIs,
// respecting commas inside angle brackets or quotes.
func splitPath(path string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) {
			switch path[i] {
			case '"':
				quoted = !quoted
				continue
			case '<':
				if !quoted {
					depth++
				}
				continue
			case '>':
				if !quoted && depth > 0 {
					depth--
				}
				continue
			case ',':
				if quoted || depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		v := strings.TrimSpace(path[start:i])
		start = i + 1
		if lt := strings.IndexByte(v, '<'); lt >= 0 {
			if gt := strings.LastIndexByte(v, '>'); gt > lt {
				v = v[lt+1 : gt]
			}
		}
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// forwardInvite builds the INVITE sent to t: a copy of req with the
// contact as Request-URI, the binding's Path as Route, one hop fewer, and
// this proxy's Record-Route so the dialog's later requests come back here.
// The Via is added by sipgo when it is sent.
func (p *Proxy) forwardInvite(req *sip.Request, t target) *sip.Request {
	fwd := req.Clone()
	fwd.Recipient = t.uri
	p.popOwnRoutes(fwd)
	for i := len(t.route) - 1; i >= 0; i-- {
		fwd.PrependHeader(&sip.RouteHeader{Address: t.route[i]})
	}
	decMaxForwards(fwd)
	fwd.PrependHeader(&sip.RecordRouteHeader{Address: p.rr})
	fwd.SetTransport(t.transport)
	fwd.SetDestination(t.dest)
	return fwd
}

// popOwnRoutes removes the Route entries naming this proxy from the top
// (RFC 3261 §16.4): what is left says where the request goes next.
func (p *Proxy) popOwnRoutes(req *sip.Request) {
	for {
		r := req.Route()
		if r == nil || !p.isSelf(&r.Address) {
			return
		}
		req.RemoveHeader("Route")
	}
}

// decMaxForwards replaces Max-Forwards with one less (the clone shares the
// original's header value, so it must not be decremented in place).
func decMaxForwards(req *sip.Request) {
	n := sip.MaxForwardsHeader(70)
	if mf := req.MaxForwards(); mf != nil {
		n = sip.MaxForwardsHeader(mf.Val() - 1)
		req.RemoveHeader("Max-Forwards")
	}
	req.AppendHeader(&n)
}
