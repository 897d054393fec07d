package dnssrv

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipha/sipha/dnssrv/dnssrvtest"
)

// zone covers every RFC 3263 branch the resolver takes.
var zone = []string{
	// NAPTR in a different order than the answer lists them.
	`example.com. 300 IN NAPTR 30 50 "s" "SIP+D2U" "" _sip._udp.example.com.`,
	`example.com. 300 IN NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp.example.com.`,
	`example.com. 300 IN NAPTR 20 50 "s" "SIP+D2T" "" _sip._tcp.example.com.`,
	`example.com. 300 IN NAPTR 20 10 "s" "SIP+D2W" "" _sip._ws.example.com.`,
	`example.com. 300 IN NAPTR 50 50 "u" "E2U+sip" "!^.*$!sip:x@y!" .`,
	`example.com. 300 IN A 192.0.2.100`,
	`_sips._tcp.example.com. 300 IN SRV 10 0 5061 tls1.example.com.`,
	`_sip._tcp.example.com. 300 IN SRV 10 0 5060 tcp1.example.com.`,
	`_sip._udp.example.com. 300 IN SRV 20 0 5060 backup.example.com.`,
	`_sip._udp.example.com. 300 IN SRV 10 60 5060 sip1.example.com.`,
	`_sip._udp.example.com. 300 IN SRV 10 40 5070 sip2.example.com.`,
	`_sip._ws.example.com. 300 IN SRV 10 0 8080 ws1.example.com.`,
	`sip1.example.com. 300 IN A 192.0.2.1`,
	`sip2.example.com. 300 IN A 192.0.2.2`,
	`sip2.example.com. 300 IN AAAA 2001:db8::2`,
	`backup.example.com. 300 IN A 192.0.2.9`,
	`tls1.example.com. 300 IN A 192.0.2.10`,
	`tcp1.example.com. 300 IN A 192.0.2.11`,
	`ws1.example.com. 300 IN A 192.0.2.12`,

	// No NAPTR: SRV per transport.
	`nonaptr.example. 300 IN SRV 0 0 0 ignored.example.`, // wrong owner: must be ignored
	`_sip._udp.nonaptr.example. 300 IN SRV 10 0 5060 u.nonaptr.example.`,
	`_sip._tcp.nonaptr.example. 300 IN SRV 10 0 5062 t.nonaptr.example.`,
	`u.nonaptr.example. 300 IN A 198.51.100.1`,
	`t.nonaptr.example. 300 IN A 198.51.100.2`,

	// Neither NAPTR nor SRV: A/AAAA with the default port.
	`aonly.example. 300 IN A 198.51.100.20`,
	`aonly.example. 300 IN AAAA 2001:db8::20`,

	// Service decidedly not available.
	`_sip._udp.dead.example. 300 IN SRV 0 0 0 .`,
	`_sip._tcp.dead.example. 300 IN SRV 0 0 0 .`,
	`_sips._tcp.dead.example. 300 IN SRV 0 0 0 .`,
	`dead.example. 300 IN A 198.51.100.99`,

	// NAPTR whose first service is unavailable and second is not.
	`half.example. 300 IN NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.half.example.`,
	`half.example. 300 IN NAPTR 20 10 "s" "SIP+D2T" "" _sip._tcp.half.example.`,
	`_sip._udp.half.example. 300 IN SRV 0 0 0 .`,
	`_sip._tcp.half.example. 300 IN SRV 1 1 5060 t.half.example.`,
	`t.half.example. 300 IN A 203.0.113.9`,

	// A non-terminal NAPTR leading to a terminal one.
	`chain.example. 300 IN NAPTR 10 10 "" "" "" next.example.`,
	`next.example. 300 IN NAPTR 10 10 "s" "SIP+D2U" "" _sip._udp.next.example.`,
	`_sip._udp.next.example. 300 IN SRV 1 1 5066 host.next.example.`,
	`host.next.example. 300 IN A 203.0.113.6`,

	// CNAME to an address.
	`alias.example. 300 IN CNAME sip1.example.com.`,

	// NAPTR whose only service the default client lacks.
	`sctp.example. 300 IN NAPTR 10 10 "s" "SIP+D2S" "" _sip._sctp.sctp.example.`,
	`_sip._sctp.sctp.example. 300 IN SRV 1 1 5060 s.sctp.example.`,
	`s.sctp.example. 300 IN A 203.0.113.7`,
	`sctp.example. 300 IN A 203.0.113.8`,
}

// fakeClock is a settable clock for cache tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startZone(t testing.TB, records ...string) *dnssrvtest.Server {
	t.Helper()
	srv, err := dnssrvtest.NewServer(records...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// newTestResolver makes a resolver on srv with a seeded generator and the
// given clock; mod edits the config first.
func newTestResolver(t testing.TB, addr string, clock *fakeClock, mod func(*Config)) *Resolver {
	t.Helper()
	cfg := Config{
		Servers:  []string{addr},
		Timeout:  time.Second,
		Attempts: 1,
		Rand:     rand.New(rand.NewPCG(1, 2)),
	}
	if clock != nil {
		cfg.Now = clock.Now
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func lines(ts []Target) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// checkNoLeak fails if goroutines started during the test outlive it.
func checkNoLeak(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		for i := 0; i < 100; i++ {
			if runtime.NumGoroutine() <= before {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:n])
	}
}
