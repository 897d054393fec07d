package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipServer is a real sipgo UA answering OPTIONS with a fixed status on a
// loopback UDP or TCP port, recording the Via branches it saw.
type sipServer struct {
	port     int
	ua       *sipgo.UserAgent
	wg       sync.WaitGroup
	mu       sync.Mutex
	branches []string
	ruris    []string
}

func startSIP(t *testing.T, network string, status int) *sipServer {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-" + fmt.Sprint(status)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	s := &sipServer{ua: ua}
	t.Cleanup(func() { s.wg.Wait() }) // cleanups run last-first: this waits after the closes below
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		br, _ := req.Via().Params.Get("branch")
		s.mu.Lock()
		s.branches = append(s.branches, br)
		s.ruris = append(s.ruris, req.Recipient.String())
		s.mu.Unlock()
		res := sip.NewResponseFromRequest(req, status, "", nil)
		if status == 503 {
			res.AppendHeader(sip.NewHeader("Retry-After", "60"))
		}
		tx.Respond(res)
	})
	s.wg.Add(1)
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = pc.LocalAddr().(*net.UDPAddr).Port
		t.Cleanup(func() { pc.Close() }) // ua.Close leaves served sockets open
		go func() { defer s.wg.Done(); srv.ServeUDP(pc) }()
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		t.Cleanup(func() { l.Close() })
		go func() { defer s.wg.Done(); srv.ServeTCP(l) }()
	}
	t.Cleanup(func() { ua.Close() })
	return s
}

func (s *sipServer) seen() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.branches...), append([]string(nil), s.ruris...)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newClient(t *testing.T) *sipgo.Client {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("caller"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); ua.Close() })
	return c
}

func svcZone(proto string, ports ...int) []string {
	recs := []string{}
	for i, p := range ports {
		host := fmt.Sprintf("n%d.svc.example.", i)
		recs = append(recs,
			fmt.Sprintf("_sip._%s.svc.example. 60 IN SRV %d 0 %d %s", proto, 10*(i+1), p, host),
			fmt.Sprintf("%s 60 IN A 127.0.0.1", host))
	}
	return recs
}

// The first target is a closed UDP port (no answer), the second answers
// 503, the third 200: Do must get the 200 with a new branch per attempt
// and leave the two failed targets on the blacklist.
func TestSenderFailsOverUDP(t *testing.T) {
	busy := startSIP(t, "udp", 503)
	good := startSIP(t, "udp", 200)
	srv := startZone(t, svcZone("udp", closedPort(t, "udp"), busy.port, good.port)...)
	r := newTestResolver(t, srv.Addr, nil, nil)
	s, err := NewSender(newClient(t), r, SenderConfig{AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "svc.example"})
	res, err := s.Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	bb, _ := busy.seen()
	gb, _ := good.seen()
	if len(bb) != 1 || len(gb) != 1 || bb[0] == gb[0] {
		t.Fatalf("branches: busy %v, good %v; want one each, different", bb, gb)
	}
	if n := r.Blacklist().Len(); n != 2 {
		t.Fatalf("%d targets blacklisted, want the closed port and the 503", n)
	}
	if req.Via() != nil {
		t.Fatal("Do modified the caller's request")
	}
	// The next request skips both failed targets: the good one answers first.
	res, err = s.Do(context.Background(), sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "svc.example"}))
	if err != nil || res.StatusCode != 200 {
		t.Fatal(res, err)
	}
	if bb, _ := busy.seen(); len(bb) != 1 {
		t.Fatalf("blacklisted target tried again: %v", bb)
	}
}

// A closed TCP port fails at once (connection refused) and the next
// target, here a trunk reached through Proxy, answers; the Request-URI
// is left alone.
func TestSenderTCPTrunk(t *testing.T) {
	good := startSIP(t, "tcp", 200)
	srv := startZone(t, svcZone("tcp", closedPort(t, "tcp"), good.port)...)
	r := newTestResolver(t, srv.Addr, nil, nil)
	trunk := sip.Uri{Scheme: "sip", Host: "svc.example", UriParams: sip.NewParams()}
	trunk.UriParams.Add("transport", "tcp")
	s, err := NewSender(newClient(t), r, SenderConfig{Proxy: &trunk, Deterministic: true})
	if err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "bob", Host: "far.invalid"})
	req.AppendHeader(sip.NewHeader("Content-Length", "0"))
	res, err := s.Do(context.Background(), req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", res, err)
	}
	if _, ruris := good.seen(); len(ruris) != 1 || ruris[0] != "sip:bob@far.invalid" {
		t.Fatalf("trunk saw Request-URI %v", ruris)
	}
}

func TestSenderAllFail(t *testing.T) {
	busy := startSIP(t, "udp", 503)
	srv := startZone(t, svcZone("udp", busy.port, closedPort(t, "udp"))...)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.SkipBlacklisted = true })
	s, err := NewSender(newClient(t), r, SenderConfig{AttemptTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Do(context.Background(), sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "svc.example"}))
	if !errors.Is(err, ErrAllTargetsFailed) {
		t.Fatalf("err = %v", err)
	}
	if res == nil || res.StatusCode != 503 {
		t.Fatalf("want the last 503 back, got %v", res)
	}
	// Every target is now listed and skipped: nothing is sent.
	if _, err := s.Do(context.Background(), sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "svc.example"})); !errors.Is(err, ErrNoTargets) {
		t.Fatalf("with every target blacklisted: %v", err)
	}
}
