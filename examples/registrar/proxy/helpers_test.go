package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/usrloc"
)

// node is one in-process registrar: its blocks, its proxy and its HTTP
// endpoint.
type node struct {
	id    cluster.NodeID
	st    *Stack
	p     *Proxy
	http  *httptest.Server
	once  sync.Once
	alive bool
}

// kill stops the node as a crash would for its peers (transport aborted,
// no handover); stop closes it gracefully.
func (n *node) kill() {
	n.once.Do(func() { n.http.Close(); n.p.Close(); n.st.Abort(); n.alive = false })
}
func (n *node) stop() {
	n.once.Do(func() { n.http.Close(); n.p.Close(); n.st.Close(); n.alive = false })
}

// sipURI is the node's SIP address as a loose route.
func (n *node) route() *sip.RouteHeader {
	host, port, _ := splitHostPort(n.p.Addr())
	u := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
	u.UriParams.Add("lr", "")
	return &sip.RouteHeader{Address: u}
}

// startNodes starts n nodes on loopback with real TCP, Raft on temporary
// directories, and CDRs going to collectorURL.
func startNodes(t *testing.T, n int, cps float64, collectorURL string) []*node {
	t.Helper()
	ids := make([]cluster.NodeID, n)
	addrs := clustertest.LoopbackAddrs(t, n)
	for i := range ids {
		ids[i] = cluster.NodeID(string(rune('a' + i)))
	}
	nodes := make([]*node, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range nodes {
		var peers []cluster.Peer
		for j := range ids {
			if j != i {
				peers = append(peers, cluster.Peer{ID: ids[j], Addr: addrs[j]})
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Start(context.Background(), StackConfig{
				ID: ids[i], ClusterAddr: addrs[i], Peers: peers, Secret: clustertest.Secret,
				DataDir: t.TempDir(), CPS: cps, CDRURLs: []string{collectorURL},
				Replicator: usrloc.ReplicatorConfig{BootstrapWait: 300 * time.Millisecond},
				Logger:     clustertest.Logger(t).With("node", string(ids[i])),
			})
			if err != nil {
				errs[i] = err
				return
			}
			p, err := New(st.Blocks(), Config{Listen: "127.0.0.1:0", KeepaliveInterval: 200 * time.Millisecond,
				Logger: clustertest.Logger(t).With("node", string(ids[i]))})
			if err != nil {
				st.Close()
				errs[i] = err
				return
			}
			nodes[i] = &node{id: ids[i], st: st, p: p, http: httptest.NewServer(p.HTTPHandler()), alive: true}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, nd := range nodes {
				if nd != nil {
					nd.stop()
				}
			}
			t.Fatalf("node %s: %v", ids[i], err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.stop()
		}
	})
	return nodes
}

// collector is an in-process CDR collector: a cdr.Receiver on httptest
// that counts every record it is handed, by ID.
type collector struct {
	srv *httptest.Server
	rcv *cdr.Receiver
	mu  sync.Mutex
	ids map[string]int
}

func newCollector(t *testing.T) *collector {
	c := &collector{ids: map[string]int{}}
	var err error
	c.rcv, err = cdr.NewReceiver(cdr.ReceiverConfig{}, func(_ context.Context, rec cdr.Record) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.ids[rec.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.srv = httptest.NewServer(c.rcv)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}

// ua is a real sipgo user agent on a loopback UDP port.
type ua struct {
	user string
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	uri  sip.Uri // its contact
}

func newUA(t *testing.T, user string) *ua {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	u := &ua{user: user, uri: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: port}}
	u.ua, _ = sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname("example.com"))
	u.srv, _ = sipgo.NewServer(u.ua)
	u.cli, _ = sipgo.NewClient(u.ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	done := make(chan struct{})
	go func() { defer close(done); u.srv.ServeUDP(pc) }()
	t.Cleanup(func() {
		// Socket first, UA last: a datagram sipgo reads after its UA
		// closed is answered on a socket it opens and reads for ever.
		pc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("UA still serving 10 s after Close")
		}
		u.ua.Close()
	})
	return u
}

// aor is the UA's address of record.
func (u *ua) aor() sip.Uri { return sip.Uri{Scheme: "sip", User: u.user, Host: "example.com"} }

// register registers the UA's contact through the proxy at addr.
func (u *ua) register(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "example.com"})
	from := &sip.FromHeader{Address: u.aor(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: u.aor()})
	req.AppendHeader(&sip.ContactHeader{Address: u.uri})
	req.AppendHeader(sip.NewHeader("Expires", "300"))
	req.SetDestination(addr)
	res, err := u.cli.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER through %s: %v %v", addr, res, err)
	}
}

// answer makes the UA answer every INVITE with 180 then 200 and hand the
// dialog to calls; BYE and ACK go to the dialogs.
func (u *ua) answer() chan *sipgo.DialogServerSession {
	calls := make(chan *sipgo.DialogServerSession, 16)
	cache := sipgo.NewDialogServerCache(u.cli, sip.ContactHeader{Address: u.uri})
	u.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := cache.ReadInvite(req, tx)
		if err != nil {
			tx.Respond(sip.NewResponseFromRequest(req, 400, err.Error(), nil))
			return
		}
		d.Respond(180, "Ringing", nil)
		d.Respond(200, "OK", nil)
		calls <- d
	})
	u.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { cache.ReadAck(req, tx) })
	u.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { cache.ReadBye(req, tx) })
	return calls
}

// caller returns a dialog client for placing calls from the UA.
func (u *ua) caller() *sipgo.DialogClientCache {
	c := sipgo.NewDialogClientCache(u.cli, sip.ContactHeader{Address: u.uri})
	u.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { c.ReadBye(req, tx) })
	return c
}

// call places a call to to through the node and waits for the answer and
// the ACK to be sent.
func call(ctx context.Context, c *sipgo.DialogClientCache, to sip.Uri, via *node) (*sipgo.DialogClientSession, error) {
	s, err := c.Invite(ctx, to, nil, via.route())
	if err != nil {
		return nil, err
	}
	if err := s.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		s.Close()
		return nil, err
	}
	return s, s.Ack(ctx)
}

// rawSIP sends one SIP message over UDP to addr and returns the first
// response line other than 100 (with " [Retry-After]" when it has that
// header), or "" when none came within the timeout.
func rawSIP(t *testing.T, addr, msg string) string {
	t.Helper()
	line, rest, _ := strings.Cut(rawSIPMessage(t, addr, msg), "\r\n")
	if strings.Contains(rest, "Retry-After:") {
		line += " [Retry-After]"
	}
	return line
}

// rawSIPMessage is rawSIP returning the whole response. LOCAL in msg
// becomes the sending socket's address.
func rawSIPMessage(t *testing.T, addr, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg = strings.ReplaceAll(msg, "LOCAL", c.LocalAddr().String())
	if _, err := c.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	for {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		if res := string(buf[:n]); !strings.HasPrefix(res, "SIP/2.0 100 ") {
			return res
		}
	}
}

// invite is a minimal INVITE from LOCAL for rawSIP; n makes it unique.
func invite(user string, n int, extra string) string {
	s := strconv.Itoa(n)
	return "INVITE sip:" + user + "@example.com SIP/2.0\n" +
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-raw-" + s + "\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:alice@acme.example>;tag=raw" + s + "\n" +
		"To: <sip:" + user + "@example.com>\n" +
		"Call-ID: raw-" + s + "@test\n" +
		"CSeq: 1 INVITE\n" + extra +
		"Content-Length: 0\n\n"
}

// get fetches an HTTP URL and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
