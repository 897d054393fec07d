package usrloc

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
)

// sipServer runs a real sipgo UDP server on loopback with handler for
// REGISTER; it returns the address.
func sipServer(t testing.TB, handler sipgo.RequestHandler) string {
	t.Helper()
	return sipServerFor(t, sip.REGISTER, handler)
}

// sipServerFor runs a real sipgo UDP server on loopback with handler for
// method; it returns the address.
func sipServerFor(t testing.TB, method sip.RequestMethod, handler sipgo.RequestHandler) string {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("registrar"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(clustertest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRequest(method, handler)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc.(*net.UDPConn).SetReadBuffer(4 << 20) // load tests burst
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeUDP(pc)
	}()
	t.Cleanup(func() {
		pc.Close()
		srv.Close()
		ua.Close()
		<-done
	})
	return pc.LocalAddr().String()
}

// testUA is a real sipgo client sending REGISTERs to a registrar.
type testUA struct {
	t      testing.TB
	client *sipgo.Client
	target string
	callID string
	cseq   uint32
}

func newTestUA(t testing.TB, target string) *testUA {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("testphone/1.0"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); ua.Close() })
	return &testUA{t: t, client: c, target: target, callID: fmt.Sprintf("cid-%p", c), cseq: 1}
}

// register sends a REGISTER for aor with the given raw Contact header values
// (none: a fetch) and extra headers ("Name: value"), returns the response.
func (u *testUA) register(aor string, contacts []string, extra ...string) *sip.Response {
	u.t.Helper()
	var ruri sip.Uri
	if err := sip.ParseUri("sip:"+u.target, &ruri); err != nil {
		u.t.Fatal(err)
	}
	req := sip.NewRequest(sip.REGISTER, ruri)
	var to sip.Uri
	if err := sip.ParseUri(aor, &to); err != nil {
		u.t.Fatal(err)
	}
	req.AppendHeader(&sip.ToHeader{Address: to})
	from := sip.FromHeader{Address: to}
	from.Params.Add("tag", "t1")
	req.AppendHeader(&from)
	cid := sip.CallIDHeader(u.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: u.cseq, MethodName: sip.REGISTER})
	u.cseq++
	req.AppendHeader(sip.NewHeader("User-Agent", "testphone/1.0"))
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	for _, e := range extra {
		name, val, _ := strings.Cut(e, ":")
		req.AppendHeader(sip.NewHeader(name, strings.TrimSpace(val)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.client.Do(ctx, req)
	if err != nil {
		u.t.Fatalf("REGISTER: %v", err)
	}
	return res
}

// resContacts returns the Contact values of a response.
func resContacts(res *sip.Response) []string {
	var out []string
	for _, h := range res.GetHeaders("contact") {
		out = append(out, h.Value())
	}
	return out
}

// rawExchange sends one datagram to addr and returns the first reply, or ""
// after wait.
func rawExchange(t testing.TB, addr, msg string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// sipTCPServer runs a real sipgo TCP server on loopback with handler for
// REGISTER; it returns the address.
func sipTCPServer(t testing.TB, handler sipgo.RequestHandler) string {
	t.Helper()
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(clustertest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	srv.OnRegister(handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTCP(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		srv.Close()
		ua.Close()
		<-done
	})
	return ln.Addr().String()
}
