package ratelimit_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/ratelimit"
)

func ExampleLimiter_Allow() {
	lim, _ := ratelimit.New(ratelimit.Config{
		Pipes:   map[string]ratelimit.Limit{"trunk-1": {Rate: 2, Burst: 2}},
		Default: ratelimit.Limit{Rate: 100},
	})
	defer lim.Close()
	for i := 0; i < 3; i++ {
		fmt.Println("trunk-1:", lim.Allow("trunk-1"))
	}
	fmt.Println("trunk-2:", lim.Allow("trunk-2"))
	// Output:
	// trunk-1: true
	// trunk-1: true
	// trunk-1: false
	// trunk-2: true
}

// A PBX limits each tenant (the From domain) to its calls per second; an
// over-limit INVITE is answered 503 with Retry-After. In cluster mode the
// same code limits the whole cluster: set Config.Transport.
func ExampleMiddleware() {
	lim, _ := ratelimit.New(ratelimit.Config{
		Pipes:   map[string]ratelimit.Limit{"small.example": {Rate: 1, Burst: 2}},
		Default: ratelimit.Limit{Rate: 50},
	})
	defer lim.Close()
	limit, _ := ratelimit.Middleware(lim, ratelimit.MiddlewareConfig{
		Pipe:    ratelimit.FromHost,
		Methods: []sip.RequestMethod{sip.INVITE},
	})

	ua, _ := sipgo.NewUA()
	defer ua.Close()
	srv, _ := sipgo.NewServer(ua)
	srv.OnInvite(limit(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil))
	}))
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	go srv.ServeUDP(pc)

	cua, _ := sipgo.NewUA()
	defer cua.Close()
	client, _ := sipgo.NewClient(cua, sipgo.WithClientHostname("127.0.0.1"))
	defer client.Close()
	for _, tenant := range []string{"small.example", "small.example", "small.example", "big.example"} {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: pc.LocalAddr().(*net.UDPAddr).Port})
		from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: tenant}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(from)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := client.Do(ctx, req)
		cancel()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(tenant, res.StatusCode, res.GetHeader("Retry-After"))
	}
	// Output:
	// small.example 486 <nil>
	// small.example 486 <nil>
	// small.example 503 Retry-After: 1
	// big.example 486 <nil>
}

func ExampleLimiter_Reserve() {
	// A clock that stands still, so the waits printed are exact.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim, _ := ratelimit.New(ratelimit.Config{
		Default: ratelimit.Limit{Rate: 10, Burst: 1},
		Now:     func() time.Time { return start },
	})
	defer lim.Close()
	// A B2BUA that queues calls instead of rejecting them: each call learns
	// how long to hold it.
	for i := 0; i < 4; i++ {
		wait, err := lim.Reserve("queue", 1, 250*time.Millisecond)
		fmt.Println(wait, err)
	}
	// Output:
	// 0s <nil>
	// 100ms <nil>
	// 200ms <nil>
	// 300ms pipe "queue" needs a wait of 300ms: ratelimit: over the limit
}
