package dialog_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/dialog"
)

// A sipgo proxy front limiting each tenant (the caller's domain) to two
// concurrent calls. On a cluster, give Config a Transport and an ownership
// Manager and the limit holds across every node. Here "next" answers 200
// itself; a real proxy forwards the INVITE and passes each response to
// Tracker.Response.
func Example_tenantLimit() {
	tr, _ := dialog.New(dialog.Config{})
	defer tr.Close()

	ua, _ := sipgo.NewUA()
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	limit := tr.Limit(dialog.LimitConfig{Profile: "calls-per-tenant", Max: 2})
	srv.OnInvite(limit(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.To().Params.Add("tag", sip.GenerateTagN(8))
		tr.Response(res)
		tx.Respond(res)
	}))
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	go srv.ServeUDP(pc)
	proxy := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port}

	caller, _ := sipgo.NewUA(sipgo.WithUserAgent("alice"), sipgo.WithUserAgentHostname("acme.example"))
	defer caller.Close()
	cli, _ := sipgo.NewClient(caller, sipgo.WithClientHostname("127.0.0.1"))
	for range 3 {
		res, err := cli.Do(context.Background(), sip.NewRequest(sip.INVITE, proxy))
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(res.StatusCode, res.Reason)
	}
	fmt.Println("acme calls:", tr.Count("calls-per-tenant", "acme.example"))
	// Output:
	// 200 OK
	// 200 OK
	// 486 Too Many Calls
	// acme calls: 2
}

// Profiles count live dialogs; a dialog leaves them once, when it ends.
func ExampleTracker_Count() {
	tr, _ := dialog.New(dialog.Config{})
	defer tr.Close()
	id := dialog.ID{CallID: "a84b4c76e66710", FromTag: "1928301774"}
	tr.Begin(id)
	tr.AddProfile(id, "calls-per-tenant", "acme")
	tr.Answer(id, "a6c85cf")
	acme := tr.Counter("calls-per-tenant", "acme") // a handle for hot paths
	fmt.Println(tr.Count("calls-per-tenant", "acme"), acme.Count())
	tr.Bye(id, dialog.PartyCallee)
	tr.Bye(id, dialog.PartyCaller) // a retransmission: no second decrement
	fmt.Println(tr.Count("calls-per-tenant", "acme"), tr.Stats().Underflows)
	// Output:
	// 1 1
	// 0 0
}
