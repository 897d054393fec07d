package dialog

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipProxy is a minimal record-routing stateful SIP proxy on sipgo that
// tracks dialogs and limits concurrent calls per tenant (the From domain)
// with Tracker.Limit.
type sipProxy struct {
	dlg   *Tracker
	ua    *sipgo.UserAgent
	srv   *sipgo.Server
	cli   *sipgo.Client
	next  sip.Uri // where new calls go
	limit int     // per tenant; 0: none
	addr  string
	wg    sync.WaitGroup
}

// listenUDP binds a loopback UDP socket on a free port.
func listenUDP(t testing.TB) (net.PacketConn, int) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pc, pc.LocalAddr().(*net.UDPAddr).Port
}

// serve runs srv on pc until the test ends.
func serve(t testing.TB, ua *sipgo.UserAgent, srv *sipgo.Server, pc net.PacketConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeUDP(pc)
	}()
	t.Cleanup(func() {
		// Socket first, UA last: a datagram sipgo reads after its UA
		// closed is answered on a socket it opens and reads for ever.
		pc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("sipgo server still serving 10s after Close")
		}
		ua.Close()
	})
}

func newSIPProxy(t testing.TB, dlg *Tracker, next sip.Uri, limit int) *sipProxy {
	t.Helper()
	pc, port := listenUDP(t)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("proxy"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	if err != nil {
		t.Fatal(err)
	}
	p := &sipProxy{dlg: dlg, ua: ua, srv: srv, cli: cli, next: next, limit: limit, addr: "127.0.0.1:" + strconv.Itoa(port)}
	mw := dlg.Limit(LimitConfig{Profile: "calls-per-tenant", Max: limit})
	srv.OnInvite(mw(p.onInvite))
	srv.OnAck(p.onAck)
	srv.OnBye(p.onInDialog)
	serve(t, ua, srv, pc)
	t.Cleanup(p.wg.Wait)
	return p
}

func (p *sipProxy) uri() sip.Uri {
	host, port, _ := net.SplitHostPort(p.addr)
	n, _ := strconv.Atoi(port)
	return sip.Uri{Scheme: "sip", Host: host, Port: n}
}

func (p *sipProxy) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() != nil {
		if tag, _ := req.To().Params.Get("tag"); tag != "" {
			p.onInDialog(req, tx) // re-INVITE
			return
		}
	}
	id, err := IDOf(req) // Limit began tracking it
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, err.Error(), nil))
		return
	}
	fwd := req.Clone()
	fwd.Recipient = p.next
	fwd.Recipient.User = req.Recipient.User
	fwd.SetDestination("")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cltx, err := p.cli.TransactionRequest(ctx, fwd, sipgo.ClientRequestAddVia, sipgo.ClientRequestAddRecordRoute)
	if err != nil {
		p.dlg.Reject(id, 503)
		tx.Respond(sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, err.Error(), nil))
		return
	}
	defer cltx.Terminate()
	tx.OnCancel(func(cancelReq *sip.Request) {
		p.dlg.Request(cancelReq)
		c := newCancel(fwd)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if ctl, err := p.cli.TransactionRequest(ctx, c); err == nil {
				select {
				case <-ctl.Responses():
				case <-ctx.Done():
				}
				ctl.Terminate()
			}
		}()
	})
	for {
		select {
		case res := <-cltx.Responses():
			p.dlg.Response(res)
			res.RemoveHeader("Via")
			tx.Respond(res)
			if res.StatusCode >= 200 {
				return
			}
		case <-cltx.Done():
			p.dlg.Reject(id, 408)
			return
		}
	}
}

// newCancel builds the CANCEL of a forwarded INVITE: same Request-URI,
// top Via (branch), From, To, Call-ID and CSeq number (RFC 3261 §9.1).
func newCancel(inv *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, inv.Recipient)
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.SetTransport(inv.Transport())
	c.SetDestination(inv.Destination())
	return c
}

// route strips this proxy's Route header and sends the request on to its
// Request-URI (a loose-routing proxy, RFC 3261 §16.4).
func (p *sipProxy) route(req *sip.Request) *sip.Request {
	fwd := req.Clone()
	if r := fwd.Route(); r != nil && r.Address.HostPort() == p.addr {
		fwd.RemoveHeader("Route")
	}
	fwd.SetDestination("")
	return fwd
}

func (p *sipProxy) onAck(req *sip.Request, tx sip.ServerTransaction) {
	p.dlg.Request(req)
	p.cli.WriteRequest(p.route(req), sipgo.ClientRequestAddVia)
}

// onInDialog relays BYE and re-INVITE statefully.
func (p *sipProxy) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	p.dlg.Request(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cltx, err := p.cli.TransactionRequest(ctx, p.route(req), sipgo.ClientRequestAddVia)
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, err.Error(), nil))
		return
	}
	defer cltx.Terminate()
	for {
		select {
		case res := <-cltx.Responses():
			res.RemoveHeader("Via")
			tx.Respond(res)
			if res.StatusCode >= 200 {
				return
			}
		case <-cltx.Done():
			return
		}
	}
}
