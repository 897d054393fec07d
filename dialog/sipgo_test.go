package dialog

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
)

// uas answers by the Request-URI user: "busy" → 486, "ring" → 180 until
// cancelled, anything else → 180 then 200. Answered sessions go to calls.
type uas struct {
	uri   sip.Uri
	calls chan *sipgo.DialogServerSession
	quit  chan struct{}
}

// next returns the next answered call.
func (u *uas) next(t *testing.T) *sipgo.DialogServerSession {
	t.Helper()
	select {
	case d := <-u.calls:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the UAS answered no call")
		return nil
	}
}

func newUAS(t *testing.T) *uas {
	pc, port := listenUDP(t)
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("uas"))
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	u := &uas{uri: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: port}, calls: make(chan *sipgo.DialogServerSession, 8), quit: make(chan struct{})}
	cache := sipgo.NewDialogServerCache(cli, sip.ContactHeader{Address: u.uri})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := cache.ReadInvite(req, tx)
		if err != nil {
			tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, err.Error(), nil))
			return
		}
		switch req.Recipient.User {
		case "busy":
			d.Respond(sip.StatusBusyHere, "Busy Here", nil)
		case "ring":
			d.Respond(sip.StatusRinging, "Ringing", nil)
			select { // sipgo answers the CANCEL and sends 487
			case <-tx.Done():
			case <-u.quit: // the test ends first
			}
		default:
			d.Respond(sip.StatusRinging, "Ringing", nil)
			d.Respond(sip.StatusOK, "OK", nil)
			u.calls <- d
		}
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { cache.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { cache.ReadBye(req, tx) })
	serve(t, ua, srv, pc)
	t.Cleanup(func() { close(u.quit) }) // runs before serve's cleanup waits
	return u
}

// uac places calls from tenant's domain.
type uac struct {
	cache *sipgo.DialogClientCache
}

func newUAC(t *testing.T, tenant string) *uac {
	pc, port := listenUDP(t)
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("alice"), sipgo.WithUserAgentHostname(tenant))
	srv, _ := sipgo.NewServer(ua)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port))
	c := &uac{cache: sipgo.NewDialogClientCache(cli, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: port}})}
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) { c.cache.ReadBye(req, tx) })
	serve(t, ua, srv, pc)
	return c
}

func (c *uac) call(ctx context.Context, p *sipProxy, user string, onResponse func(*sip.Response)) (*sipgo.DialogClientSession, error) {
	to := p.uri()
	to.User = user
	s, err := c.cache.Invite(ctx, to, nil)
	if err != nil {
		return nil, err
	}
	err = s.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if onResponse != nil {
			onResponse(res)
		}
		return nil
	}})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, s.Ack(ctx)
}

// TestSIPProxy runs real sipgo UAs over loopback UDP: UAC → proxy (with a
// Tracker) → UAS, for every way a call ends.
func TestSIPProxy(t *testing.T) {
	clustertest.CheckLeaks(t)
	var h hooks
	cfg := Config{MaxDuration: 500 * time.Millisecond}
	h.install(&cfg)
	dlg := newTracker(t, cfg)
	callee := newUAS(t)
	p := newSIPProxy(t, dlg, callee.uri, 2)
	caller := newUAC(t, "acme.example")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	lastTerm := func(t *testing.T, callID string) TerminateEvent {
		t.Helper()
		var ev TerminateEvent
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			for _, e := range h.terminated() {
				if e.ID.CallID == callID {
					return e
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no terminate event for %s", callID)
		return ev
	}
	count := func() int { return dlg.Count("calls-per-tenant", "acme.example") }

	t.Run("bye-from-caller", func(t *testing.T) {
		s, err := caller.call(ctx, p, "bob", nil)
		if err != nil {
			t.Fatal(err)
		}
		in := callee.next(t)
		defer in.Close()
		defer s.Close()
		if n := count(); n != 1 {
			t.Fatalf("count %d during the call", n)
		}
		if err := s.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		ev := lastTerm(t, string(*s.InviteRequest.CallID()))
		if ev.Reason != ReasonBye || ev.HungUp != PartyCaller || ev.Answered.IsZero() || !ev.Acked {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("bye-from-callee", func(t *testing.T) {
		s, err := caller.call(ctx, p, "bob", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		in := callee.next(t)
		defer in.Close()
		// Wait for the ACK to pass the proxy before the callee hangs up.
		id, _ := IDOf(s.InviteRequest)
		waitFor(t, "ACK seen", func() bool { i, _ := dlg.Get(id); return i.Acked })
		if err := in.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		ev := lastTerm(t, id.CallID)
		if ev.Reason != ReasonBye || ev.HungUp != PartyCallee {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("busy", func(t *testing.T) {
		_, err := caller.call(ctx, p, "busy", nil)
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) || de.Res.StatusCode != 486 {
			t.Fatalf("err %v", err)
		}
		ev := lastTerm(t, string(*de.Res.CallID()))
		if ev.Reason != ReasonRejected || ev.Code != 486 || ev.SetupTime() <= 0 {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		var callID string
		_, err := caller.call(cctx, p, "ring", func(res *sip.Response) {
			if res.StatusCode == 180 {
				callID = string(*res.CallID())
				ccancel()
			}
		})
		ccancel()
		if err == nil {
			t.Fatal("cancelled call was answered")
		}
		ev := lastTerm(t, callID)
		if ev.Reason != ReasonCancel {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s, err := caller.call(ctx, p, "bob", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		in := callee.next(t)
		defer in.Close()
		ev := lastTerm(t, string(*s.InviteRequest.CallID()))
		if ev.Reason != ReasonMaxDuration || ev.Duration() < 500*time.Millisecond {
			t.Fatalf("%+v", ev)
		}
	})
	t.Run("tenant-limit", func(t *testing.T) {
		var open []*sipgo.DialogClientSession
		for i := range 2 {
			s, err := caller.call(ctx, p, "bob"+strconv.Itoa(i), nil)
			if err != nil {
				t.Fatal(err)
			}
			in := callee.next(t)
			defer in.Close()
			open = append(open, s)
		}
		_, err := caller.call(ctx, p, "bob3", nil)
		var de *sipgo.ErrDialogResponse
		if !errors.As(err, &de) || de.Res.StatusCode != 486 {
			t.Fatalf("third call of a tenant limited to 2: %v", err)
		}
		for _, s := range open {
			s.Bye(ctx)
			s.Close()
		}
	})
	waitFor(t, "no live dialogs", func() bool { return dlg.Len() == 0 && count() == 0 })
	if s := dlg.Stats(); s.Underflows != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
