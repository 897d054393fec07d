package partition_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/partition"
)

// A call set up through a node that does not own the tenant: its ACK and
// BYE follow the dialog's path (the entry node's Record-Route, then the
// owner's Contact) and reach the node that served the INVITE, even after
// the tenant moved to another node. Real sipgo UAs over loopback UDP.
func TestInDialogRequestsFollowTheDialog(t *testing.T) {
	clustertest.CheckLeaks(t)
	ids := []cluster.NodeID{"n1", "n2", "n3", "s1"}
	f, sips, _ := startSIPFarm(t, nil, ids)
	keys := tenants(3)
	holder := f.settleRouted(keys)
	k := keys[0]
	owner := holder[k].Node
	var entry, other cluster.NodeID
	for _, id := range ids[:3] {
		switch {
		case id == owner:
		case entry == "":
			entry = id
		default:
			other = id
		}
	}
	phone := newUAC(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// A Route naming the entry node (an outbound proxy) is its own: it
	// pops it and routes the request by key.
	preloaded := func(_ *sipgo.Client, req *sip.Request) error {
		req.PrependHeader(sip.NewHeader("Route", "<sip:"+sips[entry].addr+";lr>"))
		return nil
	}
	if res := phone.send(t, sips[entry].addr, k, sipgo.ClientRequestBuild, preloaded); res.StatusCode != 200 || header(res, "X-Served-By") != string(owner) {
		t.Fatalf("MESSAGE with a Route to %s: %d %s served by %q, want %s", entry, res.StatusCode, res.Reason, header(res, "X-Served-By"), owner)
	}

	sess := phone.call(t, ctx, sips[entry].addr, k)
	defer sess.Close()
	res := sess.InviteResponse
	if res.StatusCode != 200 || header(res, "X-Served-By") != string(owner) {
		t.Fatalf("INVITE via %s: %d served by %q, want 200 from %s", entry, res.StatusCode, header(res, "X-Served-By"), owner)
	}
	if rr := res.GetHeaders("Record-Route"); len(rr) != 1 {
		t.Fatalf("INVITE via %s: Record-Route %v, want the entry node's only", entry, rr)
	}
	if err := sess.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	expectDialog(t, sips[owner], sip.ACK)

	// The tenant moves off the owner, which stays up: routing by key now
	// names another node, but the call is still on the owner.
	f.c.Node(owner).SetHealthy(false)
	moved, _ := f.c.WaitHolder(ownership.TenantResource(k), wait, func(id cluster.NodeID) bool { return id != owner })
	ownershiptest.WaitFor(t, wait, string(entry)+" to route "+k+" to "+string(moved), func() bool {
		d, err := sips[entry].router.Decide(outOfDialog(k))
		return err == nil && d.Owner == moved
	})
	bye := sip.NewRequest(sip.BYE, res.Contact().Address)
	byeRes, err := sess.Do(ctx, bye)
	if err != nil {
		t.Fatal(err)
	}
	if byeRes.StatusCode != 200 || header(byeRes, "X-Served-By") != string(owner) {
		t.Fatalf("BYE after %s moved to %s: %d %s served by %q, want the dialog's node %s",
			k, moved, byeRes.StatusCode, byeRes.Reason, header(byeRes, "X-Served-By"), owner)
	}
	expectDialog(t, sips[owner], sip.BYE)

	// An in-dialog request sent to a node on neither the dialog's route
	// nor its target is refused, not relayed.
	stray := sip.NewRequest(sip.BYE, res.Contact().Address)
	stray.AppendHeader(sip.HeaderClone(res.To()))
	stray.SetDestination(sips[other].addr)
	if r := phone.do(t, stray); r.StatusCode != 403 {
		t.Fatalf("in-dialog BYE to %s, off the route: %d %s, want 403", other, r.StatusCode, r.Reason)
	}
	// A next hop that is a strict router (no ;lr) is refused.
	strict := sip.NewRequest(sip.MESSAGE, sip.Uri{User: "alice", Host: k})
	strict.AppendHeader(sip.NewHeader("Route", "<sip:127.0.0.1:9>"))
	strict.SetDestination(sips[entry].addr)
	if r := phone.do(t, strict); r.StatusCode != 400 {
		t.Fatalf("request routed to a strict router: %d %s, want 400", r.StatusCode, r.Reason)
	}
	select {
	case m := <-sips[moved].dialog:
		t.Fatalf("the tenant's new owner %s served an in-dialog %s of a call it never had", moved, m)
	default:
	}
}

// outOfDialog is a request for tenant with no dialog and no route.
func outOfDialog(tenant string) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{User: "alice", Host: tenant})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{User: "alice", Host: tenant}})
	return req
}

func expectDialog(t *testing.T, n *sipNode, want sip.RequestMethod) {
	t.Helper()
	select {
	case m := <-n.dialog:
		if m != want {
			t.Fatalf("%s served in-dialog %s, want %s", n.id, m, want)
		}
	case <-time.After(wait):
		t.Fatalf("%s never served the in-dialog %s", n.id, want)
	}
}

// Decide's loose routing, case by case, on node n1 at 127.0.0.1:5060.
func TestDecideLoose(t *testing.T) {
	r := looseRouter(t)
	const tagged, plain = "<sip:bob@acme.example>;tag=x", "<sip:bob@acme.example>"
	for _, c := range []struct {
		name, ruri, route, to string
		local                 bool
		addr                  string
		err                   error
	}{
		{"own route popped, next route", "sip:bob@10.0.0.9", "<sip:127.0.0.1:5060;lr>,<sip:10.0.0.2;lr>", plain, false, "10.0.0.2:5060", nil},
		{"own route popped, dialog target", "sip:bob@10.0.0.9:5070", "<sip:127.0.0.1:5060;lr>", tagged, false, "10.0.0.9:5070", nil},
		{"dialog target is this node", "sip:bob@127.0.0.1:5060", "", tagged, true, "", nil},
		{"foreign route first", "sip:bob@acme.example", "<sip:[::1]:5062;lr>", plain, false, "[::1]:5062", nil},
		{"strict next hop", "sip:bob@acme.example", "<sip:10.0.0.2>", plain, false, "", partition.ErrBadRoute},
		{"dialog, not on its route", "sip:bob@10.0.0.9", "", tagged, false, "", partition.ErrNotOnRoute},
	} {
		req := parseRequest(c.ruri, c.route, c.to)
		if req == nil {
			t.Fatalf("%s: does not parse", c.name)
		}
		d, err := r.Decide(req)
		if !errors.Is(err, c.err) || err == nil && (!d.Loose || d.Local != c.local || d.Addr != c.addr) {
			t.Errorf("%s: %+v, %v; want local %v addr %q err %v", c.name, d, err, c.local, c.addr, c.err)
		}
	}
	// Only this node's Route: popped, then routed by key (held here).
	d, err := r.Decide(parseRequest("sip:alice@acme.example", "<sip:127.0.0.1:5060;lr>", "<sip:alice@acme.example>"))
	if err != nil || d.Loose || !d.Local || d.Key != "acme.example" {
		t.Errorf("outbound-proxy route: %+v, %v; want routed by key, local", d, err)
	}
}
