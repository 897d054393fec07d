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
	port    int
	wg      sync.WaitGroup // the serve loop
	mu      sync.Mutex
	closing bool           // set before hwg.Wait: no handler starts after
	hwg     sync.WaitGroup // handlers, each until its INVITE's ACK
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
	s := &sipServer{}
	h := s.track(wrap(busy))
	srv.OnInvite(h)
	srv.OnBye(h)
	srv.OnOptions(h)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.port = pc.LocalAddr().(*net.UDPAddr).Port
	s.wg.Add(1)
	go func() { defer s.wg.Done(); srv.ServeUDP(pc) }()
	tb.Cleanup(func() {
		// The UA closes last, once nothing more reaches it: sipgo handles
		// each datagram in a goroutine of its own, and one that finds the
		// listener gone (an ACK read just before the close) answers on a
		// socket it opens, read by a goroutine nothing stops. So every
		// INVITE's handler waits for its ACK, and the socket closes (ua.Close
		// leaves served sockets open) before the UA.
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.hwg.Wait()
		pc.Close()
		s.wg.Wait()
		ua.Close()
	})
	return s
}

// track counts h's calls in hwg; an INVITE's call ends once the final
// response's ACK has reached the transaction (or it ended without one).
func (s *sipServer) track(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		if s.closing { // a late retransmission; the transaction answers it
			s.mu.Unlock()
			return
		}
		s.hwg.Add(1)
		s.mu.Unlock()
		defer s.hwg.Done()
		h(req, tx)
		if req.IsInvite() {
			select {
			case <-tx.Acks():
			case <-tx.Done():
			}
		}
	}
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
