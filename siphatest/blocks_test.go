package siphatest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/ratelimit"
	"github.com/sipha/sipha/siphatest"
)

// register sends a REGISTER for aor with one contact through a node's
// registrar handler (sipgo's server-transaction recorder stands in for the
// UDP socket) and returns the response code.
func register(t *testing.T, n *siphatest.Node, user, contact string, cseq int) int {
	t.Helper()
	msg := fmt.Sprintf("REGISTER sip:example.com SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bK%s%d\r\n"+
		"To: <sip:%s@example.com>\r\nFrom: <sip:%s@example.com>;tag=1928301774\r\n"+
		"Call-ID: %s-reg\r\nCSeq: %d REGISTER\r\nContact: <%s>;expires=600\r\nContent-Length: 0\r\n\r\n",
		user, cseq, user, user, user, cseq, contact)
	parsed, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	req := parsed.(*sip.Request)
	rec := siptest.NewServerTxRecorder(req)
	n.Locations.Registrar.Handle(req, rec)
	return rec.Result()[0].StatusCode
}

func contacts(n *siphatest.Node, aor string) []string {
	var out []string
	for _, b := range n.Locations.Store.Lookup(aor, nil) {
		out = append(out, b.Contact)
	}
	slices.Sort(out)
	return out
}

// One cluster, every block, checked one by one: the cost of starting a
// cluster is paid once.
func TestThreeNodes(t *testing.T) {
	t0 := time.Now()
	c := siphatest.NewCluster(t, 3, siphatest.Options{
		Limits: map[string]ratelimit.Limit{"acme": {Rate: 20, Burst: 4}},
	})
	t.Logf("3-node cluster with every block ready in %v", time.Since(t0).Round(time.Millisecond))
	n1, n2, n3 := c.Node("n1"), c.Node("n2"), c.Node("n3")
	if l := c.Leader(); l == "" {
		t.Fatal("no agreed leader after NewCluster")
	}

	t.Run("registration on n1 seen on n3", func(t *testing.T) {
		if code := register(t, n1, "alice", "sip:alice@192.0.2.4:5060", 1); code != 200 {
			t.Fatalf("REGISTER answered %d", code)
		}
		c.Eventually("alice's binding on n3", func() bool {
			return slices.Equal(contacts(n3, "sip:alice@example.com"), []string{"sip:alice@192.0.2.4:5060"})
		})
		if b := n3.Locations.Store.Lookup("sip:alice@example.com", nil); b[0].Node != "n1" {
			t.Fatalf("binding stamped %s, want n1", b[0].Node)
		}
	})

	t.Run("dialog profile count is cluster-wide", func(t *testing.T) {
		for i, n := range []*siphatest.Node{n1, n2} {
			id := dialog.ID{CallID: fmt.Sprintf("call-%d", i), FromTag: "a"}
			if err := n.Dialogs.Begin(id); err != nil {
				t.Fatal(err)
			}
			if err := n.Dialogs.AddProfile(id, "calls-per-tenant", "acme"); err != nil {
				t.Fatal(err)
			}
		}
		c.Eventually("n3 counting both calls", func() bool { return n3.Dialogs.Count("calls-per-tenant", "acme") == 2 })
		if l := n3.Dialogs.LocalCount("calls-per-tenant", "acme"); l != 0 {
			t.Fatalf("n3 counts %d calls of its own, want 0", l)
		}
		if err := n3.Dialogs.Bye(dialog.ID{CallID: "call-0", FromTag: "a"}, dialog.PartyCaller); err != nil {
			t.Fatal(err)
		}
		c.Eventually("n1 seeing the BYE n3 got", func() bool { return n1.Dialogs.Count("calls-per-tenant", "acme") == 1 })
	})

	t.Run("CPS limit holds across nodes", func(t *testing.T) {
		// Three nodes ask far beyond the limit for 1.5 s. Each decides
		// alone, yet together they admit the cluster-wide rate: three
		// node-local limiters would admit three times as much.
		const rate, burst = 20, 4
		var admitted [3]int
		start := time.Now()
		for time.Since(start) < 1500*time.Millisecond {
			for i, n := range []*siphatest.Node{n1, n2, n3} {
				if n.Limiter.Allow("acme") {
					admitted[i]++
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		elapsed := time.Since(start).Seconds()
		total := admitted[0] + admitted[1] + admitted[2]
		limit := rate*elapsed + burst + 3 // plus each node's bucket of at least 1
		t.Logf("admitted %v = %d in %.2fs; the cluster-wide limit allows %.0f", admitted, total, elapsed, limit)
		if float64(total) > limit {
			t.Fatalf("admitted %d, over the cluster-wide limit of %.0f", total, limit)
		}
		if total == 0 {
			t.Fatal("nothing admitted")
		}
	})

	t.Run("CDR reaches the collector", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		id, err := n2.CDR.Post(ctx, cdr.Record{ID: "call-0;a", Fields: map[string]any{"tenant": "acme", "billsec": 42}})
		if err != nil {
			t.Fatal(err)
		}
		c.Eventually("the CDR at the collector", func() bool { return c.Collector().Has(id) })
		rec := c.Collector().Records()[0]
		if rec.Fields["tenant"] != "acme" || fmt.Sprint(rec.Fields["billsec"]) != "42" {
			t.Fatalf("collected %+v", rec.Fields)
		}
	})

	t.Run("partitioner places a tenant on one node", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n1.Partitioner.Add(ctx, "acme.example"); err != nil {
			t.Fatal(err)
		}
		res := n1.Partitioner.Resource("acme.example")
		c.Eventually("one holder of "+res, func() bool { return len(c.Holders(res)) == 1 })
		claim, ok := c.Owner(res)
		if !ok || claim.Node != c.Holders(res)[0] {
			t.Fatalf("owner %+v %v, holders %v", claim, ok, c.Holders(res))
		}
	})
}
