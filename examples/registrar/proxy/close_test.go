package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/usrloc"
)

// TestCloseDuringCall closes a proxy while it waits for a callee's answer,
// again and again on one stack: the INVITE it forwarded is cancelled and
// no goroutine (sipgo's UDP readers included) outlives Close.
func TestCloseDuringCall(t *testing.T) {
	clustertest.CheckLeaks(t)
	st, err := Start(context.Background(), StackConfig{ID: "solo", ClusterAddr: "127.0.0.1:0", Secret: clustertest.Secret,
		DataDir: t.TempDir(), Replicator: usrloc.ReplicatorConfig{BootstrapWait: 100 * time.Millisecond},
		Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob := newUA(t, "bob")
	cancels := make(chan string, 100)
	bob.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		id := req.CallID().Value()
		tx.OnCancel(func(*sip.Request) { cancels <- id })
		tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
		<-tx.Done() // sipgo answers the CANCEL and sends 487
	})
	for i := range 10 {
		p, err := New(st.Blocks(), Config{Listen: "127.0.0.1:0", Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			bob.register(ctx, t, p.Addr())
		}
		if got := rawSIP(t, p.Addr(), invite("bob", i, "")); got != "SIP/2.0 180 Ringing" {
			t.Fatalf("call %d through the proxy: %q, want the 180", i, got)
		}
		p.Close()
	}
	// Every forwarded INVITE was cancelled at the callee.
	for i := range 10 {
		select {
		case <-cancels:
		case <-ctx.Done():
			t.Fatalf("%d of 10 calls cancelled at the callee", i)
		}
	}
}
