package proxy

import (
	"context"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/dialog"
)

// TestCluster runs three in-process nodes (real TCP, Raft on temporary
// directories) and real sipgo UAs on loopback: the callee registers through
// a, the caller calls through b, the call ends, its CDR reaches the collector
// once, then a dies and a new call through b still reaches the callee.
func TestCluster(t *testing.T) {
	clustertest.CheckLeaks(t)
	col := newCollector(t)
	// High enough that no call of the test waits for a token (a node's
	// bucket holds its share of the burst, Rate × 100 ms); the cps subtest
	// goes over it on purpose.
	const cps = 300
	nodes := startNodes(t, 3, cps, col.srv.URL)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		waitFor(t, 20*time.Second, "node "+string(n.id)+" healthy", func() bool { return n.p.Health() == "" })
	}
	// Healthy needs a majority in contact; a CPS limiter that has not heard
	// from every peer yet admits only its floor share (2 CPS here), which
	// would refuse the test's second call.
	for _, n := range nodes {
		waitFor(t, 10*time.Second, "node "+string(n.id)+"'s limiter hearing both peers", func() bool {
			return n.st.Limiter.Stats().PeersInContact == 2
		})
	}
	time.Sleep(300 * time.Millisecond) // and a few rounds acknowledged
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bob := newUA(t, "bob")
	answered := bob.answer()
	var pingMu sync.Mutex
	pings := map[string]int{} // NAT keepalives bob got, by source
	bob.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		pingMu.Lock()
		pings[req.Source()]++
		pingMu.Unlock()
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	pinged := func() map[string]int {
		pingMu.Lock()
		defer pingMu.Unlock()
		return maps.Clone(pings)
	}
	bob.register(ctx, t, a.p.Addr())
	alice := newUA(t, "alice")
	calls := alice.caller()
	aor := "sip:bob@example.com"
	waitFor(t, 5*time.Second, "binding replicated to b and c", func() bool {
		return len(b.st.Store.Lookup(aor, nil)) == 1 && len(c.st.Store.Lookup(aor, nil)) == 1
	})

	// A call through b to the callee registered through a.
	ended := placeAndHangUp(ctx, t, calls, bob, answered, b, nodes)
	waitFor(t, 10*time.Second, "the CDR at the collector", func() bool { return col.count(CDRID(ended)) == 1 })

	t.Run("keepalive", func(t *testing.T) {
		// Only a, whose socket bob registered through, pings bob, from that
		// socket (the address bob's NAT would expect).
		waitFor(t, 5*time.Second, "two keepalives at bob", func() bool { return pinged()[a.p.Addr()] >= 2 })
		if got := pinged(); len(got) != 1 {
			t.Fatalf("keepalives by source: %v, want only from a (%s)", got, a.p.Addr())
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for _, tc := range []struct{ name, msg, want string }{
			{"no From tag", strings.Replace(invite("bob", 1, ""), ";tag=raw1", "", 1), "SIP/2.0 400 Missing From Tag"},
			{"CSeq mismatch", strings.Replace(invite("bob", 2, ""), "CSeq: 1 INVITE", "CSeq: 1 BYE", 1), "SIP/2.0 400 CSeq Method Mismatch"},
			{"tel URI", strings.Replace(invite("bob", 3, ""), "INVITE sip:bob@example.com", "INVITE tel:+15551234", 1), "SIP/2.0 416 Unsupported URI Scheme"},
			{"no hops left", strings.Replace(invite("bob", 4, ""), "Max-Forwards: 70", "Max-Forwards: 0", 1), "SIP/2.0 483 Too Many Hops"},
			{"options", "OPTIONS sip:" + b.p.Addr() + " SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-opt\nFrom: <sip:x@y>;tag=1\nTo: <sip:" + b.p.Addr() + ">\nCall-ID: opt@test\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n", "SIP/2.0 200 OK"},
		} {
			if got := rawSIP(t, b.p.Addr(), tc.msg); got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		// carol (registered through c) rings and never answers; the caller
		// cancels through b after the 180.
		carol := newUA(t, "carol")
		carol.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
			tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
			<-tx.Done() // sipgo answers the CANCEL and sends 487
		})
		carol.register(ctx, t, c.p.Addr())
		waitFor(t, 5*time.Second, "carol's binding on b", func() bool { return len(b.st.Store.Lookup("sip:carol@example.com", nil)) == 1 })
		cctx, ccancel := context.WithCancel(ctx)
		s, err := calls.Invite(cctx, carol.aor(), nil, b.route())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rang := false
		err = s.WaitAnswer(cctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			if res.StatusCode == 180 {
				rang = true
				ccancel()
			}
			return nil
		}})
		ccancel()
		if err == nil || !rang {
			t.Fatalf("call to carol: rang %v, then %v", rang, err)
		}
		id, _ := dialog.IDOf(s.InviteRequest)
		for _, n := range nodes {
			waitFor(t, 5*time.Second, "the call cancelled on "+string(n.id), func() bool {
				i, ok := n.st.Dialogs.Get(id)
				return ok && i.State == dialog.Terminated && i.Reason == dialog.ReasonCancel
			})
		}
		waitFor(t, 10*time.Second, "the cancelled call's CDR", func() bool { return col.count(CDRID(id)) == 1 })
	})

	t.Run("http", func(t *testing.T) {
		// Each node resource (whose holder fires its dialogs' CDR hooks) is
		// held by exactly one node, and exactly one node spooled the CDR:
		// which one depends on where the ownership layer put node/b.
		holders := map[string]int{}
		spooled := 0
		held := regexp.MustCompile(`(?m)^sipha_ownership_held\{resource="(node/[a-z])"\} [0-9]+$`)
		spool := regexp.MustCompile(`(?m)^sipha_cdr_total\{stage="spooled"\} ([0-9]+)$`)
		for _, n := range nodes {
			code, body := get(t, n.http.URL+"/healthz")
			if code != 200 || body != "ok\n" {
				t.Fatalf("%s healthz: %d %q", n.id, code, body)
			}
			code, body = get(t, n.http.URL+"/metrics")
			if code != 200 {
				t.Fatalf("%s metrics: %d", n.id, code)
			}
			checkExposition(t, body)
			for _, want := range []string{
				"sipha_registrations 2\n",
				"sipha_dialogs_live 0\n",
				`sipha_dialog_profile{profile="all",value=""} 0` + "\n",
				`sipha_cps_total{decision="denied"} 0` + "\n",
				`sipha_cluster_peer_state{peer="c",state="up"} 1` + "\n",
				"sipha_healthy 1\n",
				`sipha_keepalives_total{outcome="failed"} 0` + "\n",
				`sipha_node_info{node="` + string(n.id) + `"} 1` + "\n",
			} {
				if n == c && strings.Contains(want, `peer="c"`) {
					want = strings.Replace(want, `peer="c"`, `peer="a"`, 1)
				}
				if !strings.Contains(body, want) {
					t.Errorf("%s metrics lack %q:\n%s", n.id, want, body)
				}
			}
			for _, m := range held.FindAllStringSubmatch(body, -1) {
				holders[m[1]]++
			}
			if m := spool.FindStringSubmatch(body); m != nil {
				k, _ := strconv.Atoi(m[1])
				spooled += k
			}
		}
		if len(holders) != 3 || holders["node/a"] != 1 || holders["node/b"] != 1 || holders["node/c"] != 1 {
			t.Errorf("node resources held %v, want each once", holders)
		}
		if spooled != 2 {
			t.Errorf("%d CDRs spooled across the nodes, want 2 (answered, cancelled)", spooled)
		}
		code, body := get(t, b.http.URL+"/nothing")
		if code != 404 {
			t.Errorf("/nothing: %d %q", code, body)
		}
	})

	t.Run("failover", func(t *testing.T) {
		a.kill()
		start := time.Now()
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		s, err := call(cctx, calls, bob.aor(), b)
		if err != nil {
			t.Fatalf("call through b right after a died: %v", err)
		}
		t.Logf("call through b answered %v after a was killed", time.Since(start))
		in := <-answered
		if err := s.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		id, _ := dialog.IDOf(s.InviteRequest)
		s.Close()
		in.Close()
		waitFor(t, 10*time.Second, "no live dialogs on b and c", func() bool {
			return noDialogs(b) && noDialogs(c)
		})
		waitFor(t, 10*time.Second, "the second CDR", func() bool { return col.count(CDRID(id)) == 1 })
		waitFor(t, 10*time.Second, "b healthy with a down", func() bool { return b.p.Health() == "" })
		// Nobody else can ping from a's address, so nobody pings bob now.
		before := pinged()
		time.Sleep(600 * time.Millisecond)
		if got := pinged(); !maps.Equal(got, before) {
			t.Errorf("keepalives after a died: %v, before %v", got, before)
		}
	})

	t.Run("cps", func(t *testing.T) {
		// INVITEs to an unknown user from 8 senders as fast as b answers,
		// with a dead: the limiter admits (404) at most the cluster-wide rate
		// over the elapsed time plus the burst, and refuses the rest with 503
		// and Retry-After.
		const senders, each = 8, 60
		var allowed, denied atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for w := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					switch got := rawSIP(t, b.p.Addr(), invite("nobody", 1000*(w+1)+i, "")); got {
					case "SIP/2.0 404 Not Found":
						allowed.Add(1)
					case "SIP/2.0 503 Service Unavailable [Retry-After]":
						denied.Add(1)
					default:
						t.Errorf("INVITE %d/%d: %q", w, i, got)
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		t.Logf("%d INVITEs in %v: %d admitted, %d refused with 503", senders*each, elapsed, allowed.Load(), denied.Load())
		if allowed.Load() == 0 || denied.Load() == 0 || float64(allowed.Load()) > cps*elapsed.Seconds()+cps/10+5 {
			t.Fatalf("%d admitted in %v under a %d CPS limit", allowed.Load(), elapsed, cps)
		}
	})

	b.stop()
	c.stop()
	for id, n := range col.ids {
		if n != 1 {
			t.Errorf("CDR %s handed to the collector %d times", id, n)
		}
	}
	if len(col.ids) != 3 {
		t.Errorf("collector holds %d CDRs, want 3: %v", len(col.ids), col.ids)
	}
}

// placeAndHangUp places a call through via to callee, checks it is counted
// on every live node, hangs up, and waits for it to end everywhere.
func placeAndHangUp(ctx context.Context, t *testing.T, calls *sipgo.DialogClientCache, callee *ua,
	answered chan *sipgo.DialogServerSession, via *node, nodes []*node) dialog.ID {
	t.Helper()
	s, err := call(ctx, calls, callee.aor(), via)
	if err != nil {
		t.Fatalf("call through %s: %v", via.id, err)
	}
	defer s.Close()
	in := <-answered
	defer in.Close()
	id, err := dialog.IDOf(s.InviteRequest)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "the call counted on "+string(n.id), func() bool {
			return n.st.Dialogs.Count(ProfileAll, "") == 1 && n.st.Dialogs.Count(ProfileCallerDomain, "example.com") == 1
		})
	}
	waitFor(t, 5*time.Second, "the ACK seen", func() bool { i, _ := via.st.Dialogs.Get(id); return i.Acked })
	if err := s.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "no live dialog on "+string(n.id), func() bool { return noDialogs(n) })
	}
	return id
}

// checkExposition checks every line of a Prometheus text exposition.
func checkExposition(t *testing.T, body string) {
	t.Helper()
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+Inf]+$`)
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !sample.MatchString(line) {
			t.Errorf("not an exposition line: %q", line)
		}
	}
}

func noDialogs(n *node) bool {
	return n.st.Dialogs.Len() == 0 && n.st.Dialogs.Count(ProfileAll, "") == 0
}
