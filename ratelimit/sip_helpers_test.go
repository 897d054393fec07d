package ratelimit_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipServer is a sipgo server on a loopback UDP port whose handlers answer
// every request that reaches them with 486 (so an admitted INVITE is told
// from a rejected one by the status alone).
type sipServer struct {
	port int
	srv  *sipgo.Server
	pc   net.PacketConn
	wg   sync.WaitGroup
}

func startSIPServer(tb testing.TB, wrap func(sipgo.RequestHandler) sipgo.RequestHandler) *sipServer {
	tb.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("limited-pbx"))
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		tb.Fatal(err)
	}
	busy := func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
	}
	srv.OnInvite(wrap(busy))
	srv.OnBye(wrap(busy))
	srv.OnOptions(wrap(busy))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &sipServer{port: pc.LocalAddr().(*net.UDPAddr).Port, srv: srv, pc: pc}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); srv.ServeUDP(pc) }()
	tb.Cleanup(func() {
		ua.Close()
		pc.Close() // ua.Close leaves served sockets open
		s.wg.Wait()
	})
	return s
}

func newSIPClient(tb testing.TB) *sipgo.Client {
	tb.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("caller"))
	if err != nil {
		tb.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); ua.Close() })
	return c
}

// call sends method from user@tenant to the server and returns the final
// response; toTag makes it an in-dialog request.
func call(tb testing.TB, c *sipgo.Client, port int, method sip.RequestMethod, tenant, toTag string) *sip.Response {
	tb.Helper()
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: tenant}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1"}, Params: sip.NewParams()}
	if toTag != "" {
		to.Params.Add("tag", toTag)
	}
	req.AppendHeader(to)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Do(ctx, req)
	if err != nil {
		tb.Fatalf("%s from %s: %v", method, tenant, err)
	}
	return res
}
