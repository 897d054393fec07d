package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/dialog"
)

// domain is the SIP domain of the demo's phones.
const domain = "acme.example"

// phone is a sipgo user agent on its own loopback UDP port, as a softphone
// would be: callees register and answer, the caller places calls.
type phone struct {
	user    string
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	pc      net.PacketConn
	contact sip.Uri
	done    chan struct{} // closed when the server loop returned
	calls   *sipgo.DialogClientCache
}

func newPhone(user string) (*phone, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	p := &phone{user: user, pc: pc, done: make(chan struct{}),
		contact: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: port}}
	if p.ua, err = sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(domain)); err != nil {
		pc.Close()
		return nil, err
	}
	p.srv, _ = sipgo.NewServer(p.ua)
	// Requests leave from the phone's own socket, as a softphone's do: the
	// registrar records that address, and calls come back to it.
	if p.cli, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port),
		sipgo.WithClientConnectionAddr(pc.LocalAddr().String())); err != nil {
		p.ua.Close()
		pc.Close()
		return nil, err
	}
	go func() { defer close(p.done); p.srv.ServeUDP(pc) }()
	// The client sends from the socket once the server loop has put it in
	// sipgo's connection pool; before, it would try to bind it again.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, _ := p.ua.TransportLayer().GetConnection("udp", pc.LocalAddr().String()); c != nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.close()
			return nil, fmt.Errorf("phone %s: sipgo did not serve %s", user, pc.LocalAddr())
		}
	}
}

// close stops the UA and waits for its server loop.
func (p *phone) close() {
	p.ua.Close()
	p.pc.Close()
	<-p.done
}

func (p *phone) aor() sip.Uri { return sip.Uri{Scheme: "sip", User: p.user, Host: domain} }

// register binds the phone's contact to its AOR through the proxy at via.
func (p *phone) register(ctx context.Context, via string) error {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: domain})
	from := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: p.aor()})
	req.AppendHeader(&sip.ContactHeader{Address: p.contact})
	req.AppendHeader(sip.NewHeader("Expires", "300"))
	req.SetDestination(via)
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("REGISTER %s through %s: %w", p.user, via, err)
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("REGISTER %s through %s: %d %s", p.user, via, res.StatusCode, res.Reason)
	}
	return nil
}

// answer makes the phone answer every INVITE (180, then 200); the caller's
// ACK and BYE end up in the dialog, which is forgotten once it ends.
func (p *phone) answer() {
	cache := sipgo.NewDialogServerCache(p.cli, sip.ContactHeader{Address: p.contact})
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := cache.ReadInvite(req, tx)
		if err != nil {
			tx.Respond(sip.NewResponseFromRequest(req, 400, err.Error(), nil))
			return
		}
		d.OnState(func(s sip.DialogState) {
			if s == sip.DialogStateEnded {
				d.Close()
			}
		})
		d.Respond(180, "Ringing", nil)
		d.Respond(200, "OK", nil)
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { cache.ReadAck(req, tx) })
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { cache.ReadBye(req, tx) })
}

// refusedError is a call refused with a final non-2xx response.
type refusedError struct {
	code   int
	reason string
}

func (e *refusedError) Error() string { return fmt.Sprintf("refused: %d %s", e.code, e.reason) }

// call places a call to callee through the proxy at via and waits for the
// answer and the ACK; hangUp ends it. The dialog ID is the one the proxy
// tracks (and names the call's CDR after).
func (p *phone) call(ctx context.Context, callee sip.Uri, via string) (*sipgo.DialogClientSession, dialog.ID, error) {
	if p.calls == nil {
		p.calls = sipgo.NewDialogClientCache(p.cli, sip.ContactHeader{Address: p.contact})
		p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { p.calls.ReadBye(req, tx) })
	}
	s, err := p.calls.Invite(ctx, callee, nil, route(via))
	if err != nil {
		return nil, dialog.ID{}, err
	}
	id, _ := dialog.IDOf(s.InviteRequest)
	if err := s.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		s.Close()
		var rerr *sipgo.ErrDialogResponse
		if errors.As(err, &rerr) {
			return nil, id, &refusedError{rerr.Res.StatusCode, rerr.Res.Reason}
		}
		return nil, id, err
	}
	if err := s.Ack(ctx); err != nil {
		s.Close()
		return nil, id, err
	}
	return s, id, nil
}

// hangUp sends BYE on an answered call and forgets it.
func hangUp(ctx context.Context, s *sipgo.DialogClientSession) error {
	defer s.Close()
	return s.Bye(ctx)
}

// ping sends a bare INVITE to user through via and returns the final
// response's code (sipgo sends the ACK of a non-2xx one).
func (p *phone) ping(ctx context.Context, user, via string) (int, error) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: user, Host: domain})
	from := &sip.FromHeader{Address: p.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: req.Recipient})
	req.AppendHeader(&sip.ContactHeader{Address: p.contact})
	req.SetDestination(via)
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	return res.StatusCode, nil
}

// route is the Route header that sends a request through the proxy at
// addr (a loose route).
func route(addr string) *sip.RouteHeader {
	host, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	u := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
	u.UriParams.Add("lr", "")
	return &sip.RouteHeader{Address: u}
}

// callTimeout bounds one call attempt in the demo.
const callTimeout = 3 * time.Second
