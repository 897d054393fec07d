package usrloc

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// TestDigestAuthRealUA: a real sipgo UA registers through a registrar with
// DigestAuth: challenged first, accepted with the right password (sipgo's
// own DoDigestAuth answers the challenge), refused with a wrong one.
func TestDigestAuthRealUA(t *testing.T) {
	auth := &DigestAuth{Realm: "example.com", Secret: []byte("0123456789abcdef-secret"),
		Password: func(u string) (string, bool) { return "s3cret", u == "alice" }}
	s, _, addr := newRegistrar(t, Config{}, RegistrarConfig{Authenticate: auth})
	ua := newTestUA(t, addr)
	res := ua.register("sip:alice@example.com", []string{"<sip:alice@192.0.2.1>"})
	if res.StatusCode != 401 || res.GetHeader("www-authenticate") == nil {
		t.Fatalf("no challenge: %d", res.StatusCode)
	}
	if s.Len() != 0 {
		t.Fatal("stored before authentication")
	}
	try := func(password string) *sip.Response {
		// Build the same REGISTER again and let sipgo answer the challenge.
		req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "example.com"})
		req.SetDestination(addr)
		to := sip.Uri{Scheme: "sip", User: "alice", Host: "example.com"}
		req.AppendHeader(&sip.ToHeader{Address: to})
		from := sip.FromHeader{Address: to}
		from.Params.Add("tag", "x1")
		req.AppendHeader(&from)
		req.AppendHeader(sip.NewHeader("Contact", "<sip:alice@192.0.2.1>"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		first, err := ua.client.Do(ctx, req)
		if err != nil || first.StatusCode != 401 {
			t.Fatalf("first attempt: %v %v", first, err)
		}
		res, err := ua.client.DoDigestAuth(ctx, req, first, sipgo.DigestAuth{Username: "alice", Password: password})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := try("wrong"); res.StatusCode != 403 || s.Len() != 0 {
		t.Fatalf("wrong password: %d, %d stored", res.StatusCode, s.Len())
	}
	if res := try("s3cret"); res.StatusCode != 200 || s.Len() != 1 {
		t.Fatalf("right password: %d %s, %d stored", res.StatusCode, res.Reason, s.Len())
	}
}

func TestDigestNonce(t *testing.T) {
	now := time.Unix(1000, 0)
	d := &DigestAuth{Secret: []byte("0123456789abcdef"), Now: func() time.Time { return now }, NonceTTL: time.Minute}
	n := d.nonce()
	if err := d.checkNonce(n); err != nil {
		t.Fatal(err)
	}
	other := &DigestAuth{Secret: []byte("another-secret-16"), Now: d.Now}
	if other.checkNonce(n) == nil {
		t.Fatal("nonce accepted under another secret")
	}
	now = now.Add(2 * time.Minute)
	if d.checkNonce(n) == nil {
		t.Fatal("expired nonce accepted")
	}
	for _, bad := range []string{"", "!!", "AAAA"} {
		if d.checkNonce(bad) == nil {
			t.Fatalf("nonce %q accepted", bad)
		}
	}
}
