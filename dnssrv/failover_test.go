package dnssrv

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func tgt(s string) Target {
	return Target{Transport: UDP, Host: "h", Port: 5060, Addr: netip.MustParseAddr(s)}
}

func walk(it *Iterator) []string {
	var out []string
	for t, ok := it.Next(); ok; t, ok = it.Next() {
		out = append(out, t.Addr.String())
	}
	return out
}

func TestIteratorBlacklistSharedAcrossLookups(t *testing.T) {
	srv := startZone(t, zone...)
	clock := newClock()
	r := newTestResolver(t, srv.Addr, clock, nil)
	ts := []Target{tgt("192.0.2.1"), tgt("192.0.2.2"), tgt("192.0.2.3")}

	it := r.NewIterator(ts)
	first, _ := it.Next()
	it.Failed(0) // e.g. a timeout
	second, _ := it.Next()
	it.Failed(10 * time.Second) // e.g. 503 with Retry-After: 10
	if first.Addr.String() != "192.0.2.1" || second.Addr.String() != "192.0.2.2" {
		t.Fatalf("walked %v, %v", first, second)
	}
	// A later request tries the listed targets last.
	if got := walk(r.NewIterator(ts)); !equal(got, "192.0.2.3", "192.0.2.1", "192.0.2.2") {
		t.Fatalf("second request order %v", got)
	}
	// Retry-After 10s ends before the default 30s TTL.
	clock.Add(11 * time.Second)
	if got := walk(r.NewIterator(ts)); !equal(got, "192.0.2.2", "192.0.2.3", "192.0.2.1") {
		t.Fatalf("after 11s: %v", got)
	}
	clock.Add(20 * time.Second)
	if got := walk(r.NewIterator(ts)); !equal(got, "192.0.2.1", "192.0.2.2", "192.0.2.3") {
		t.Fatalf("after the TTL: %v", got)
	}
	if r.Stats().Blacklisted != 0 {
		t.Fatal("entries outlived their expiry")
	}
}

func TestIteratorSkipBlacklisted(t *testing.T) {
	srv := startZone(t, zone...)
	r := newTestResolver(t, srv.Addr, nil, func(c *Config) { c.SkipBlacklisted = true })
	ts := []Target{tgt("192.0.2.1"), tgt("192.0.2.2")}
	r.Blacklist().Add(ts[0], time.Minute)
	if got := walk(r.NewIterator(ts)); !equal(got, "192.0.2.2") {
		t.Fatalf("got %v", got)
	}
	it := r.NewIterator(ts)
	it.Next()
	it.Succeeded()
	if got := walk(r.NewIterator(ts)); !equal(got, "192.0.2.2") {
		t.Fatalf("Succeeded on an unlisted target changed the list: %v", got)
	}
	r.Blacklist().Remove(ts[0])
	if got := walk(r.NewIterator(ts)); !equal(got, "192.0.2.1", "192.0.2.2") {
		t.Fatalf("after Remove: %v", got)
	}
}

func TestIterateResolves(t *testing.T) {
	srv := startZone(t, zone...)
	r := newTestResolver(t, srv.Addr, nil, nil)
	u, _ := ParseURI("sip:nonaptr.example")
	it, err := r.Iterate(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if got := walk(it); !equal(got, "198.51.100.1", "198.51.100.2") {
		t.Fatalf("got %v", got)
	}
	if _, err := r.Iterate(context.Background(), &sip.Uri{Scheme: "sip"}); !errors.Is(err, ErrBadURI) {
		t.Fatalf("empty host: %v", err)
	}
}

func TestBlacklistBounded(t *testing.T) {
	clock := newClock()
	bl, err := NewBlacklist(BlacklistConfig{MaxEntries: 3, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"} {
		bl.Add(tgt(a), time.Duration(i+1)*time.Minute)
	}
	if bl.Len() != 3 || bl.Contains(tgt("192.0.2.1")) || !bl.Contains(tgt("192.0.2.4")) {
		t.Fatalf("len %d; the entry expiring first should have gone", bl.Len())
	}
	if _, err := NewBlacklist(BlacklistConfig{TTL: -1}); !errors.Is(err, ErrBadConfig) {
		t.Fatal("negative TTL accepted")
	}
}

func TestShouldFailover(t *testing.T) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "example.com"})
	r503 := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
	r503.AppendHeader(sip.NewHeader("Retry-After", "120 (maintenance)"))
	r486 := sip.NewResponseFromRequest(req, 486, "Busy Here", nil)
	for _, tc := range []struct {
		res  *sip.Response
		err  error
		want bool
	}{
		{nil, sip.ErrTransactionTimeout, true},
		{nil, errors.New("connection refused"), true},
		{nil, context.Canceled, false},
		{r503, nil, true},
		{r486, nil, false},
	} {
		if got := ShouldFailover(tc.res, tc.err); got != tc.want {
			t.Errorf("ShouldFailover(%v, %v) = %v", tc.res, tc.err, got)
		}
	}
	if got := RetryAfter(r503); got != 120*time.Second {
		t.Fatalf("RetryAfter = %v", got)
	}
	if RetryAfter(r486) != 0 || RetryAfter(nil) != 0 {
		t.Fatal("RetryAfter without the header")
	}
}

func TestRequestKey(t *testing.T) {
	mk := func(branch string) *sip.Request {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "example.com"})
		cid := sip.CallIDHeader("abc@host")
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
		via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "h", Port: 5060}
		via.Params.Add("branch", branch)
		req.AppendHeader(via)
		return req
	}
	a, b := mk("z9hG4bK1"), mk("z9hG4bK2")
	if RequestKey(a) != RequestKey(a.Clone()) {
		t.Fatal("a retransmission got a different key")
	}
	if RequestKey(a) == RequestKey(b) {
		t.Fatal("different branches share a key")
	}
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
