package partition_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/ownership/ownershiptest"
	"github.com/sipha/sipha/ownership/raftowner"
	"github.com/sipha/sipha/partition"
)

// Real sipgo proxies on loopback in front of a 3-node + spare farm: a
// request for a tenant entering at any node is served by the tenant's
// committed holder; when the holder dies the others answer 503 until the
// ownership layer commits the spare, never serving the tenant elsewhere.
func TestRouterOverSIP(t *testing.T) {
	sip.SIPDebug = os.Getenv("SIPDEBUG") != ""
	clustertest.CheckLeaks(t)
	ids := []cluster.NodeID{"n1", "n2", "n3", "s1"}
	// A long reassignment delay keeps a dead owner committed for a while,
	// so the test sees what the routers do meanwhile.
	f, sips, down := startSIPFarm(t, func(cfg *raftowner.Config) { cfg.ReassignDelay = 3 * time.Second }, ids)
	keys := tenants(6)
	holder := f.settleRouted(keys)

	phone := newUAC(t)
	for _, k := range keys {
		for _, entry := range ids {
			res := phone.send(t, sips[entry].addr, k)
			if res.StatusCode != 200 || header(res, "X-Served-By") != string(holder[k].Node) ||
				header(res, "X-Epoch") != strconv.FormatUint(uint64(holder[k].Epoch), 10) {
				t.Fatalf("%s via %s: %d %s served by %q epoch %q, want the holder %v",
					k, entry, res.StatusCode, res.Reason, header(res, "X-Served-By"), header(res, "X-Epoch"), holder[k])
			}
			// The proxy took its Via off the response; a forwarded MESSAGE
			// carries the proxy's Record-Route back.
			if vias := res.GetHeaders("Via"); len(vias) != 1 {
				t.Fatalf("%s via %s: response has %d Via headers, want the phone's only", k, entry, len(vias))
			}
			if forwarded := entry != holder[k].Node; forwarded != (res.GetHeader("Record-Route") != nil) {
				t.Fatalf("%s via %s: Record-Route %v, forwarded %v", k, entry, res.GetHeader("Record-Route"), forwarded)
			}
		}
	}
	// A request a peer already forwarded is not forwarded again: when two
	// nodes' views differ for a moment, it must not bounce between them.
	asPeer := func(_ *sipgo.Client, req *sip.Request) error {
		req.Via().Params.Add("sipha-partition", "")
		return nil
	}
	for _, entry := range ids {
		if entry != holder[keys[0]].Node {
			res := phone.send(t, sips[entry].addr, keys[0], sipgo.ClientRequestBuild, asPeer)
			if res.StatusCode != 503 {
				t.Fatalf("%s via %s marked as forwarded by a peer: %d %s, want 503", keys[0], entry, res.StatusCode, res.Reason)
			}
			break
		}
	}
	// A caller that hangs up while the owner rings: the entry node relays
	// the CANCEL, and the owner's INVITE ends canceled.
	for _, entry := range ids {
		if owner := holder[keys[1]].Node; entry != owner {
			phone.inviteAndCancel(t, sips[entry].addr, keys[1])
			select {
			case err := <-sips[owner].ended:
				if !errors.Is(err, sip.ErrTransactionCanceled) {
					t.Fatalf("owner's INVITE ended with %v, want canceled", err)
				}
			case <-time.After(wait):
				t.Fatal("owner's INVITE did not end")
			}
			break
		}
	}
	if res := phone.send(t, sips["n1"].addr, "nobody.example"); res.StatusCode != 404 {
		t.Fatalf("unknown tenant: %d %s, want 404", res.StatusCode, res.Reason)
	}

	// Kill the holder of keys[0] (not n1, which routes).
	k := keys[0]
	victim := holder[k].Node
	entry := cluster.NodeID("n1")
	if victim == "n1" {
		entry = "n2"
	}
	down(victim)
	sawUnavailable := false
	ownershiptest.WaitFor(t, wait, "the spare to serve "+k, func() bool {
		res := phone.send(t, sips[entry].addr, k)
		after, _ := f.part(entry).Owner(k)
		switch {
		case res.StatusCode == 503:
			sawUnavailable = true
			return false
		case res.StatusCode != 200:
			t.Fatalf("%s after killing %s: %d %s", k, victim, res.StatusCode, res.Reason)
		case after.Node == victim:
			t.Fatalf("%s served by %s while %s was still the committed owner", k, header(res, "X-Served-By"), victim)
		}
		by := cluster.NodeID(header(res, "X-Served-By"))
		if by != "s1" || header(res, "X-Epoch") == strconv.FormatUint(uint64(holder[k].Epoch), 10) {
			t.Fatalf("%s served by %s at epoch %s, want the spare at a new epoch", k, by, header(res, "X-Epoch"))
		}
		return true
	})
	if !sawUnavailable {
		t.Fatalf("no 503 while the dead owner was still committed (reassignment took under the forward timeout?)")
	}
}

func TestDecideErrors(t *testing.T) {
	p := singleNode(t)
	if _, err := partition.NewRouter(p, nil, partition.RouterConfig{}); !errors.Is(err, partition.ErrBadConfig) {
		t.Fatalf("NewRouter without Addr: %v", err)
	}
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Host: "x.example"})
	if _, err := partition.ToDomain(req); !errors.Is(err, partition.ErrBadKey) {
		t.Fatalf("ToDomain without To: %v", err)
	}
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Host: "Acme.Example"}})
	if k, err := partition.ToDomain(req); err != nil || k != "acme.example" {
		t.Fatalf("ToDomain = %q, %v", k, err)
	}
	if err := p.Add(context.Background(), "bad key"); !errors.Is(err, partition.ErrBadKey) {
		t.Fatalf("Add(bad key) = %v", err)
	}
}
