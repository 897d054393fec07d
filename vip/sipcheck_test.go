package vip_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/vip"
	"github.com/sipha/sipha/vip/viptest"
)

// sipStack is a real sipgo server on loopback standing in for a node's SIP
// stack; status is what it answers OPTIONS with.
type sipStack struct {
	port   int
	status atomic.Int32
}

func startSIPStack(t *testing.T) *sipStack {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sip-node"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	s := &sipStack{}
	s.status.Store(200)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, int(s.status.Load()), "", nil))
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = pc.LocalAddr().(*net.UDPAddr).Port
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.ServeUDP(pc) }()
	// Socket first, UA last: a datagram sipgo reads after its UA closed is
	// answered on a socket it opens and reads for ever.
	t.Cleanup(func() { pc.Close(); wg.Wait(); ua.Close() })
	return s
}

// optionsCheck is the health check the issue names: the local SIP stack
// answers OPTIONS with 200.
func optionsCheck(client *sipgo.Client, port int) vip.Check {
	return vip.Check{Name: "sip-options", Interval: 30 * time.Millisecond, Timeout: 300 * time.Millisecond, Fall: 2, Rise: 2,
		Run: func(ctx context.Context) error {
			req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: port})
			res, err := client.Do(ctx, req)
			if err != nil {
				return err
			}
			if res.StatusCode != 200 {
				return fmt.Errorf("OPTIONS answered %d", res.StatusCode)
			}
			return nil
		}}
}

// A node whose SIP stack starts answering 503 gives its VIP to the other
// node, released before the other adds it.
func TestSIPOptionsHealthCheck(t *testing.T) {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("health"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { client.Close(); ua.Close() }()
	stacks := map[cluster.NodeID]*sipStack{"n1": startSIPStack(t), "n2": startSIPStack(t)}
	cfg := func(id cluster.NodeID) vip.Config {
		c := pairConfig(vipOn(vipA, "n1", "n2"))(id)
		c.Checks = []vip.Check{optionsCheck(client, stacks[id].port)}
		return c
	}
	p := newPairWithLog(t, viptest.NewLog(nil), cfg)
	p.waitHolder(t, vipA, "n1")
	stacks["n1"].status.Store(503)
	p.waitHolder(t, vipA, "n2")
	p.noConflicts(t)
	if st := p.mgrs["n1"].Stats(); st.Healthy || len(st.FailingChecks) != 1 {
		t.Fatalf("n1 stats %+v", st)
	}
	stacks["n1"].status.Store(200)
	ownershiptest.WaitFor(t, 5*time.Second, "n1 healthy again", p.mgrs["n1"].Healthy)
}
