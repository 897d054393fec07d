package usrloc

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/emiago/sipgo/siptest"
)

var (
	reqLine  = regexp.MustCompile(`^[!-~]+ `)
	cseqLine = regexp.MustCompile(`(?im)^(cseq\s*:\s*\d+\s+)([!-~]+)`)
)

// asRegister turns an RFC 4475 request into a REGISTER; responses stay.
func asRegister(msg []byte) []byte {
	if strings.HasPrefix(string(msg), "SIP/") {
		return msg
	}
	out := reqLine.ReplaceAll(msg, []byte("REGISTER "))
	return cseqLine.ReplaceAll(out, []byte("${1}REGISTER"))
}

func tortureMessages(t *testing.T, prefix string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "rfc4475", prefix+"-*.dat"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no torture messages: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = asRegister(b)
	}
	return out
}

// TestTortureInvalidNeverStored sends every invalid RFC 4475 message, made
// a REGISTER, to a registrar behind a real sipgo UDP server: none may
// panic or store a binding, and the registrar still works after them.
func TestTortureInvalidNeverStored(t *testing.T) {
	s, r, addr := newRegistrar(t, Config{}, RegistrarConfig{})
	msgs := tortureMessages(t, "invalid")
	// RFC 4475 §3.3.7, §3.3.12 and §3.3.13 are well-formed REGISTERs a
	// registrar without authentication MUST accept (sipgo files them
	// with the invalid ones); they are checked in TestTortureMustSucceed.
	for name := range mustSucceed {
		delete(msgs, name)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst, _ := net.ResolveUDPAddr("udp", addr)
	buf := make([]byte, 65536)
	replies := 0
	for name, m := range msgs {
		if _, err := conn.WriteTo(m, dst); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Most are dropped by sipgo's parser: wait briefly for a reply.
		conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := conn.ReadFrom(buf); err == nil {
			replies++
			if strings.HasPrefix(string(buf[:n]), "SIP/2.0 2") {
				t.Errorf("%s got a 2xx:\n%s", name, buf[:n])
			}
		}
		if n := s.Len(); n != 0 {
			t.Fatalf("%s stored %d bindings", name, n)
		}
	}
	// The same messages straight into the handler, for those the parser
	// lets through (the UDP path drops most before the registrar sees them).
	handled := 0
	for name, m := range msgs {
		parsed, err := sip.ParseMessage(m)
		if err != nil {
			continue
		}
		req, ok := parsed.(*sip.Request)
		if !ok || !recordable(req) {
			continue
		}
		handled++
		rec := siptest.NewServerTxRecorder(req)
		r.Handle(req, rec)
		res := rec.Result()
		if len(res) != 1 || res[0].StatusCode < 200 {
			t.Errorf("%s: no final response: %v", name, res)
			continue
		}
		// A 2xx is right only for a fetch (no Contact), which changes nothing.
		if res[0].StatusCode < 300 && len(req.GetHeaders("contact")) > 0 {
			t.Errorf("%s: %d %s", name, res[0].StatusCode, res[0].Reason)
		}
		t.Logf("%s: %d %s", name, res[0].StatusCode, res[0].Reason)
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("stored %d bindings from invalid messages", n)
	}
	ua := newTestUA(t, addr)
	if res := ua.register("sip:after@example.com", []string{"<sip:after@192.0.2.1>"}); res.StatusCode != 200 {
		t.Fatalf("registrar broken after the torture: %d", res.StatusCode)
	}
	t.Logf("%d invalid messages, %d UDP replies, %d reached the handler directly", len(msgs), replies, handled)
}

// TestTortureValidAnswered: the valid RFC 4475 messages made REGISTERs are
// answered (any final code) without a panic.
func TestTortureValidAnswered(t *testing.T) {
	_, r, _ := newRegistrar(t, Config{}, RegistrarConfig{})
	for name, m := range tortureMessages(t, "valid") {
		parsed, err := sip.ParseMessage(m)
		if err != nil {
			continue
		}
		req, ok := parsed.(*sip.Request)
		if !ok || !recordable(req) {
			continue
		}
		rec := siptest.NewServerTxRecorder(req)
		r.Handle(req, rec)
		res := rec.Result()
		if len(res) != 1 || res[0].StatusCode < 200 {
			t.Errorf("%s: no final response (%v)", name, res)
			continue
		}
		t.Logf("%s: %d %s", name, res[0].StatusCode, res[0].Reason)
	}
}

var mustSucceed = map[string]string{
	"invalid-cparam01.dat": "sip:+19725552222@gw1.example.net",
	"invalid-cparam02.dat": "sip:+19725552222@gw1.example.net;unknownparam",
	"invalid-regaut01.dat": "",
}

// TestTortureMustSucceed: the RFC 4475 REGISTERs that must succeed do, and
// cparam01's unknownparam stays a contact parameter (not part of the URI)
// while cparam02's is part of the URI.
func TestTortureMustSucceed(t *testing.T) {
	s, r, _ := newRegistrar(t, Config{}, RegistrarConfig{})
	msgs := tortureMessages(t, "invalid")
	for name, want := range mustSucceed {
		parsed, err := sip.ParseMessage(msgs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		req := parsed.(*sip.Request)
		if req.From().Params == nil || !req.From().Params.Has("tag") {
			t.Fatalf("%s: no From tag", name)
		}
		rec := siptest.NewServerTxRecorder(req)
		r.Handle(req, rec)
		res := rec.Result()
		if len(res) != 1 || res[0].StatusCode != 200 {
			t.Fatalf("%s: %v", name, res)
		}
		if want == "" {
			continue
		}
		aor, _ := CanonicalAOR(&req.To().Address)
		found := false
		for _, b := range s.Lookup(aor, nil) {
			found = found || b.Contact == want
		}
		if !found {
			t.Errorf("%s: %s not stored: %v", name, want, contacts(s.Lookup(aor, nil)))
		}
	}
}

// recordable reports whether siptest's recorder can wrap req (it panics
// without a Via, a CSeq or a From tag).
func recordable(req *sip.Request) bool {
	return req.Via() != nil && req.CSeq() != nil && req.From() != nil && req.From().Params.Has("tag")
}
