package usrloc

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
)

// fakeOwner stands in for the ownership layer, which is not merged yet:
// the test decides which resources this node holds.
type fakeOwner struct {
	mu   sync.Mutex
	held map[string]bool
	fns  []func()
}

func (o *fakeOwner) Owns(r string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held[r]
}

func (o *fakeOwner) Watch(fn func()) func() {
	o.mu.Lock()
	o.fns = append(o.fns, fn)
	o.mu.Unlock()
	return func() {}
}

func (o *fakeOwner) set(r string, v bool) {
	o.mu.Lock()
	o.held[r] = v
	fns := o.fns
	o.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// pingLog records keepalives with the (fake) time they were sent.
type pingLog struct {
	mu    sync.Mutex
	at    map[string][]time.Time
	fail  map[string]bool
	total int
}

func (l *pingLog) send(ctx context.Context, b Binding) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at[b.Contact] = append(l.at[b.Contact], time.Now())
	l.total++
	if l.fail[b.Contact] {
		return errors.New("no answer")
	}
	return nil
}

func (l *pingLog) count(c string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.at[c])
}

func (l *pingLog) first(c string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.at[c]) == 0 {
		return time.Time{}, false
	}
	return l.at[c][0], true
}

func TestPingerOnlyOwnerPingsAndTakesOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestStore(t, Config{})
		put := func(aor, uri, socket string) {
			c := contact(uri, time.Hour)
			c.Socket = socket
			if _, err := s.Register(reg(aor, "c", 1, c), nil); err != nil {
				t.Fatal(err)
			}
		}
		put("sip:a@x", "sip:a@192.0.2.1", "udp:10.0.0.1:5060")
		put("sip:b@x", "sip:b@192.0.2.2", "udp:10.0.0.2:5060")
		put("sip:c@x", "sip:c@192.0.2.3", "tcp:10.0.0.1:5060")
		own := &fakeOwner{held: map[string]bool{"socket/udp:10.0.0.1:5060": true, "socket/tcp:10.0.0.1:5060": true}}
		log := &pingLog{at: map[string][]time.Time{}}
		p, err := NewPinger(s, PingerConfig{Owner: own, Send: log.send, Interval: time.Second, Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		time.Sleep(3500 * time.Millisecond)
		if n := log.count("sip:a@192.0.2.1"); n < 3 || n > 4 {
			t.Fatalf("owned binding pinged %d times in 3.5 intervals", n)
		}
		if log.count("sip:b@192.0.2.2") != 0 || log.count("sip:c@192.0.2.3") != 0 {
			t.Fatal("pinged a binding of a socket it does not own, or a TCP flow")
		}
		// Ownership of 10.0.0.2 moves here: pinging starts within one interval.
		moved := time.Now()
		own.set("socket/udp:10.0.0.2:5060", true)
		own.set("socket/udp:10.0.0.1:5060", false)
		time.Sleep(2 * time.Second)
		at, ok := log.first("sip:b@192.0.2.2")
		if !ok || at.Sub(moved) > time.Second {
			t.Fatalf("new owner's first keepalive %v after the move (ok=%v)", at.Sub(moved), ok)
		}
		before := log.count("sip:a@192.0.2.1")
		time.Sleep(2 * time.Second)
		if log.count("sip:a@192.0.2.1") != before {
			t.Fatal("kept pinging after losing the socket")
		}
	})
}

func TestPingerRemovesAfterFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestStore(t, Config{})
		c := contact("sip:dead@192.0.2.9", time.Hour)
		c.Socket = "udp:10.0.0.1:5060"
		s.Register(reg("sip:dead@x", "ua-callid", 7, c), nil)
		own := &fakeOwner{held: map[string]bool{"socket/udp:10.0.0.1:5060": true}}
		log := &pingLog{at: map[string][]time.Time{}, fail: map[string]bool{"sip:dead@192.0.2.9": true}}
		p, err := NewPinger(s, PingerConfig{Owner: own, Send: log.send, Interval: time.Second, MaxFailures: 3, Logger: clustertest.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		time.Sleep(1500 * time.Millisecond)
		if len(s.Lookup("sip:dead@x", nil)) != 1 {
			t.Fatal("removed before MaxFailures")
		}
		time.Sleep(2 * time.Second)
		if len(s.Lookup("sip:dead@x", nil)) != 0 || p.Stats().Removed != 1 {
			t.Fatalf("not removed after 3 failures: %+v", p.Stats())
		}
		// The UA comes back with its own Call-ID and next CSeq: accepted.
		if _, err := s.Register(reg("sip:dead@x", "ua-callid", 8, c), nil); err != nil {
			t.Fatalf("re-registration after removal: %v", err)
		}
	})
}

// TestSipgoKeepaliveRealUA: the OPTIONS sender against a real sipgo UA on
// loopback, and against a port where nobody answers.
func TestSipgoKeepaliveRealUA(t *testing.T) {
	clustertest.CheckLeaks(t)
	var mu sync.Mutex
	got := 0
	phone := sipServerFor(t, sip.OPTIONS, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		got++
		mu.Unlock()
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	send := SipgoKeepalive(client)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := send(ctx, Binding{Contact: "sip:phone@" + phone, Received: phone}); err != nil {
		t.Fatalf("keepalive to a live UA: %v", err)
	}
	mu.Lock()
	if got != 1 {
		t.Fatalf("UA saw %d OPTIONS", got)
	}
	mu.Unlock()
	// A closed port: no answer within the context.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := send(ctx2, Binding{Contact: "sip:phone@" + dead, Received: dead}); err == nil {
		t.Fatal("keepalive to a dead UA succeeded")
	}
}

// TestCRLFKeepaliveAnswered: an RFC 5626 CRLFCRLF ping on a TCP flow to
// the registrar's sipgo server is answered with CRLF by the node holding
// the flow.
func TestCRLFKeepaliveAnswered(t *testing.T) {
	s := newTestStore(t, Config{})
	r, err := NewRegistrar(s, RegistrarConfig{Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr := sipTCPServer(t, r.Handle)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 8)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "\r\n" {
		t.Fatalf("pong %q, %v", buf[:n], err)
	}
}
