package partition_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
)

// sipNode is one node's SIP proxy: a real sipgo UA listening on loopback
// UDP, whose router serves the tenants the node holds and forwards the rest.
type sipNode struct {
	id   cluster.NodeID
	addr string
	conn net.PacketConn
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	done chan struct{}
	// ended receives how each INVITE this node served ended.
	ended chan error
	// dialog receives the method of each in-dialog request (ACK, BYE)
	// this node served locally.
	dialog chan sip.RequestMethod
	router *partition.Router
}

// addrBook maps node IDs to SIP addresses; the routers read it.
type addrBook struct {
	mu sync.Mutex
	m  map[cluster.NodeID]string
}

func (b *addrBook) lookup(id cluster.NodeID) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.m[id]
	return a, ok
}

// startSIP starts node id's proxy. Its local handler answers MESSAGE with
// 200 and says which node served it at which epoch.
func startSIP(t *testing.T, id cluster.NodeID, p *partition.Partitioner, book *addrBook) *sipNode {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(string(id)), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	// Via names the listening socket, so responses come back to it.
	client, err := sipgo.NewClient(ua, sipgo.WithClientAddr(conn.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := partition.NewRouter(p, client, partition.RouterConfig{Addr: book.lookup, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(req *sip.Request, tx sip.ServerTransaction) {
		key, _ := partition.ToDomain(req)
		e, ok := p.Held(key)
		if !ok { // the router only calls us for held keys
			tx.Respond(sip.NewResponseFromRequest(req, 500, "Served Without Holding", nil))
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Served-By", string(id)))
		res.AppendHeader(sip.NewHeader("X-Epoch", itoa(uint64(e))))
		tx.Respond(res)
	}
	srv.OnMessage(r.Middleware(serve))
	srv.OnOptions(r.Middleware(serve))
	ended := make(chan error, 4)
	dialog := make(chan sip.RequestMethod, 8)
	host, port, _ := sip.ParseAddr(conn.LocalAddr().String())
	srv.OnInvite(r.Middleware(func(req *sip.Request, tx sip.ServerTransaction) {
		if req.Recipient.User == "bob" {
			// Bob answers: the dialog lives on this node, its Contact.
			res := sip.NewResponseFromRequest(req, 200, "OK", nil)
			res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{User: "bob", Host: host, Port: port}})
			res.AppendHeader(sip.NewHeader("X-Served-By", string(id)))
			tx.Respond(res)
			return
		}
		// Anyone else rings until the caller gives up.
		tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
		select {
		case <-tx.Done():
			ended <- tx.Err()
		case <-time.After(10 * time.Second):
			ended <- context.DeadlineExceeded
		}
	}))
	srv.OnAck(r.Middleware(func(req *sip.Request, _ sip.ServerTransaction) { dialog <- sip.ACK }))
	srv.OnBye(r.Middleware(func(req *sip.Request, tx sip.ServerTransaction) {
		dialog <- sip.BYE
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("X-Served-By", string(id)))
		tx.Respond(res)
	}))
	n := &sipNode{id: id, addr: conn.LocalAddr().String(), conn: conn, ua: ua, ended: ended, dialog: dialog,
		router: r, srv: srv, done: make(chan struct{})}
	book.mu.Lock()
	book.m[id] = n.addr
	book.mu.Unlock()
	go func() {
		defer close(n.done)
		srv.ServeUDP(conn)
	}()
	return n
}

// startSIPFarm starts a farm of ids (the last one a spare) with a SIP
// proxy in front of each node. down stops a node's proxy, then the node;
// every node goes down when the test ends.
func startSIPFarm(t *testing.T, tune func(*raftowner.Config), ids []cluster.NodeID) (*farm, map[cluster.NodeID]*sipNode, func(cluster.NodeID)) {
	f := newFarm(t, partition.Config{}, tune, ids, ids[len(ids)-1])
	book := &addrBook{m: map[cluster.NodeID]string{}}
	sips := map[cluster.NodeID]*sipNode{}
	for _, id := range ids {
		sips[id] = startSIP(t, id, f.part(id), book)
	}
	down := func(id cluster.NodeID) {
		if sips[id] != nil {
			sips[id].close()
			delete(sips, id)
		}
		f.stop(id)
	}
	t.Cleanup(func() {
		for _, id := range ids {
			down(id)
		}
	})
	return f, sips, down
}

// settleRouted settles keys and waits until every running node knows
// each key's committed owner, so every router routes the same way.
func (f *farm) settleRouted(keys []string) map[string]ownership.Claim {
	_, holder := f.settle(keys)
	for _, k := range keys {
		ownershiptest.WaitFor(f.t, wait, "every node to learn the owner of "+k, func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, p := range f.parts {
				if cl, _ := p.Owner(k); cl != holder[k] {
					return false
				}
			}
			return true
		})
	}
	return holder
}

func (n *sipNode) close() {
	n.srv.Close()
	n.ua.Close()
	n.conn.Close() // sipgo leaves a socket given to ServeUDP open
	<-n.done
}

func itoa(v uint64) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
		if v == 0 {
			return string(b)
		}
	}
}

// uac is a plain sipgo client, the phone of a tenant's user.
type uac struct {
	ua     *sipgo.UserAgent
	client *sipgo.Client
	conn   net.PacketConn
	done   chan struct{}
}

func newUAC(t *testing.T) *uac {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("phone"), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := sipgo.NewClient(ua, sipgo.WithClientAddr(conn.LocalAddr().String()))
	if err != nil {
		t.Fatal(err)
	}
	u := &uac{ua: ua, client: c, conn: conn, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		ua.TransportLayer().ServeUDP(conn)
	}()
	t.Cleanup(func() {
		c.Close()
		ua.Close()
		conn.Close()
		<-u.done
	})
	return u
}

// send sends a MESSAGE for tenant through the proxy at addr and returns
// the final response.
func (u *uac) send(t *testing.T, addr, tenant string, opts ...sipgo.ClientRequestOption) *sip.Response {
	t.Helper()
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{User: "alice", Host: tenant})
	req.SetDestination(addr)
	req.SetBody([]byte("hello"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.client.Do(ctx, req, opts...)
	if err != nil {
		t.Fatalf("MESSAGE for %s via %s: %v", tenant, addr, err)
	}
	return res
}

func header(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// inviteAndCancel calls alice@tenant through the proxy at addr and hangs up
// on the first 180.
func (u *uac) inviteAndCancel(t *testing.T, addr, tenant string) {
	t.Helper()
	host, port, _ := sip.ParseAddr(u.conn.LocalAddr().String())
	dc := sipgo.NewDialogClientCache(u.client, sip.ContactHeader{Address: sip.Uri{User: "phone", Host: host, Port: port}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "alice", Host: tenant})
	req.SetDestination(addr)
	sess, err := dc.WriteInvite(ctx, req)
	if err != nil {
		t.Fatalf("INVITE for %s via %s: %v", tenant, addr, err)
	}
	defer sess.Close()
	ring, hangUp := context.WithCancel(ctx)
	err = sess.WaitAnswer(ring, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode == 180 {
			hangUp()
		}
		return nil
	}})
	if err == nil {
		t.Fatalf("INVITE for %s was answered, want it canceled", tenant)
	}
}

// call calls bob@tenant through the proxy at addr and returns the answered
// dialog (not yet acknowledged).
func (u *uac) call(t *testing.T, ctx context.Context, addr, tenant string) *sipgo.DialogClientSession {
	t.Helper()
	host, port, _ := sip.ParseAddr(u.conn.LocalAddr().String())
	dc := sipgo.NewDialogClientCache(u.client, sip.ContactHeader{Address: sip.Uri{User: "phone", Host: host, Port: port}})
	req := sip.NewRequest(sip.INVITE, sip.Uri{User: "bob", Host: tenant})
	req.SetDestination(addr)
	sess, err := dc.WriteInvite(ctx, req)
	if err != nil {
		t.Fatalf("INVITE for %s via %s: %v", tenant, addr, err)
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		sess.Close()
		t.Fatalf("INVITE for %s via %s: %v", tenant, addr, err)
	}
	return sess
}

// do sends req (its destination set) and returns the final response.
func (u *uac) do(t *testing.T, req *sip.Request) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s to %s: %v", req.Method, req.Destination(), err)
	}
	return res
}
