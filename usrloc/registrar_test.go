package usrloc

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster/clustertest"
)

func newRegistrar(t testing.TB, scfg Config, rcfg RegistrarConfig) (*Store, *Registrar, string) {
	t.Helper()
	s := newTestStore(t, scfg)
	if rcfg.Logger == nil {
		rcfg.Logger = clustertest.Logger(t)
	}
	r, err := NewRegistrar(s, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, r, sipServer(t, r.Handle)
}

func TestRegistrarOverSipgo(t *testing.T) {
	s, _, addr := newRegistrar(t, Config{}, RegistrarConfig{})
	ua := newTestUA(t, addr)
	aor := "sip:alice@Example.COM"

	// Two contacts in one header and a third in another; parameters on each.
	res := ua.register(aor, []string{
		`<sip:alice@192.0.2.1:5060>;expires=120;q=0.5, <sip:alice@192.0.2.2:5070;transport=udp>;q=1`,
		`<sip:alice@192.0.2.3>`,
	}, "Expires: 600", "Path: <sip:edge1.example.com;lr>")
	if res.StatusCode != 200 {
		t.Fatalf("REGISTER: %d %s", res.StatusCode, res.Reason)
	}
	got := resContacts(res)
	// q=1 and no q rank first (newest first among equals), q=0.5 last.
	want := []string{
		"<sip:alice@192.0.2.3>;expires=600",
		"<sip:alice@192.0.2.2:5070;transport=udp>;expires=600",
		"<sip:alice@192.0.2.1:5060>;expires=120;q=0.5",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("200 contacts\n got %q\nwant %q", got, want)
	}
	date := res.GetHeader("date")
	if date == nil {
		t.Fatal("no Date header")
	}
	if _, err := time.Parse(http.TimeFormat, date.Value()); err != nil {
		t.Fatalf("Date %q: %v", date.Value(), err)
	}
	if p := res.GetHeader("path"); p == nil || p.Value() != "<sip:edge1.example.com;lr>" {
		t.Fatalf("Path not echoed: %v", p)
	}
	bs := s.Lookup("sip:alice@example.com", nil)
	if len(bs) != 3 {
		t.Fatalf("store holds %d bindings for the canonical AOR", len(bs))
	}
	b := bs[0]
	if b.UserAgent != "testphone/1.0" || !strings.HasPrefix(b.Received, "127.0.0.1:") || b.Path != "<sip:edge1.example.com;lr>" ||
		b.Socket != "udp:"+addr || b.CallID != ua.callID {
		t.Fatalf("binding fields: %+v (socket want udp:%s)", b, addr)
	}

	// A fetch changes nothing and lists everything.
	res = ua.register(aor, nil)
	if res.StatusCode != 200 || len(resContacts(res)) != 3 {
		t.Fatalf("fetch: %d %v", res.StatusCode, resContacts(res))
	}

	// Un-register one contact.
	res = ua.register(aor, []string{"<sip:alice@192.0.2.3>;expires=0"})
	if res.StatusCode != 200 || len(resContacts(res)) != 2 {
		t.Fatalf("un-register one: %d %v", res.StatusCode, resContacts(res))
	}

	// Contact: * needs Expires: 0.
	res = ua.register(aor, []string{"*"}, "Expires: 60")
	if res.StatusCode != 400 || len(s.Lookup("sip:alice@example.com", nil)) != 2 {
		t.Fatalf("wildcard without Expires 0: %d, %d left", res.StatusCode, len(s.Lookup("sip:alice@example.com", nil)))
	}
	res = ua.register(aor, []string{"*", "<sip:alice@192.0.2.9>"}, "Expires: 0")
	if res.StatusCode != 400 {
		t.Fatalf("wildcard with another contact: %d", res.StatusCode)
	}
	res = ua.register(aor, []string{"*"}, "Expires: 0")
	if res.StatusCode != 200 || len(resContacts(res)) != 0 || len(s.Lookup("sip:alice@example.com", nil)) != 0 {
		t.Fatalf("Contact: *: %d %v", res.StatusCode, resContacts(res))
	}
}

func TestRegistrarExpiryLimits(t *testing.T) {
	_, _, addr := newRegistrar(t, Config{}, RegistrarConfig{MinExpires: 60 * time.Second, MaxExpires: 1800 * time.Second, DefaultExpires: 900 * time.Second})
	ua := newTestUA(t, addr)
	aor := "sip:bob@example.com"
	res := ua.register(aor, []string{"<sip:bob@192.0.2.1>;expires=30"})
	if res.StatusCode != 423 {
		t.Fatalf("too brief: %d", res.StatusCode)
	}
	if h := res.GetHeader("min-expires"); h == nil || h.Value() != "60" {
		t.Fatalf("Min-Expires: %v", h)
	}
	res = ua.register(aor, []string{"<sip:bob@192.0.2.1>"}, "Expires: 30")
	if res.StatusCode != 423 {
		t.Fatalf("too brief by header: %d", res.StatusCode)
	}
	res = ua.register(aor, []string{"<sip:bob@192.0.2.1>;expires=99999"})
	if got := resContacts(res); res.StatusCode != 200 || len(got) != 1 || got[0] != "<sip:bob@192.0.2.1>;expires=1800" {
		t.Fatalf("capped at max: %d %v", res.StatusCode, got)
	}
	res = ua.register(aor, []string{"<sip:bob@192.0.2.2>"})
	if got := resContacts(res); len(got) != 2 || got[0] != "<sip:bob@192.0.2.2>;expires=900" {
		t.Fatalf("default expiry: %v", got)
	}
}

func TestRegistrarCSeqOrder(t *testing.T) {
	s, _, addr := newRegistrar(t, Config{}, RegistrarConfig{})
	ua := newTestUA(t, addr)
	aor := "sip:carol@example.com"
	ua.cseq = 10
	if res := ua.register(aor, []string{"<sip:carol@192.0.2.1>"}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	ua.cseq = 5 // an old request delayed in the network
	res := ua.register(aor, []string{"<sip:carol@192.0.2.1>;expires=0"})
	if res.StatusCode != 400 || len(s.Lookup(aor, nil)) != 1 {
		t.Fatalf("out-of-order CSeq: %d %s, %d bindings", res.StatusCode, res.Reason, len(s.Lookup(aor, nil)))
	}
}

func TestRegistrarMalformed400(t *testing.T) {
	s, _, addr := newRegistrar(t, Config{}, RegistrarConfig{})
	ua := newTestUA(t, addr)
	aor := "sip:dave@example.com"
	for _, tc := range []struct {
		contact []string
		extra   []string
		reason  string
	}{
		{[]string{"<sip:d@192.0.2.1>;q=1.5"}, nil, "Bad q Value"},
		{[]string{"<sip:d@192.0.2.1>;q=abc"}, nil, "Bad q Value"},
		{[]string{"<sip:d@192.0.2.1>;expires=-1"}, nil, "Bad Contact Expires"},
		{[]string{"<sip:d@192.0.2.1>;expires=99999999999"}, nil, "Bad Contact Expires"},
		{[]string{"<sip:d@192.0.2.1>"}, []string{"Expires: soon"}, "Bad Expires"},
		{[]string{"<sip:d@192.0.2.1>;reg-id=1"}, nil, "Bad reg-id"},
		{[]string{`<sip:d@192.0.2.1>;+sip.instance="<urn:uuid:1>";reg-id=x`}, nil, "Bad reg-id"},
		{[]string{"<sip:d@192.0.2.1>", "*"}, []string{"Expires: 0"}, "Invalid Wildcard Contact"},
	} {
		res := ua.register(aor, tc.contact, tc.extra...)
		if res.StatusCode != 400 || res.Reason != tc.reason {
			t.Errorf("%v %v: %d %q, want 400 %q", tc.contact, tc.extra, res.StatusCode, res.Reason, tc.reason)
		}
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("malformed requests stored %d bindings", n)
	}
}

func TestRegistrarAuthHook(t *testing.T) {
	var seen []string
	auth := AuthenticatorFunc(func(req *sip.Request, tx sip.ServerTransaction, aor string) bool {
		seen = append(seen, aor)
		if req.GetHeader("authorization") == nil {
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="example.com", nonce="n1"`))
			tx.Respond(res)
			return false
		}
		return true
	})
	s, _, addr := newRegistrar(t, Config{}, RegistrarConfig{Authenticate: auth})
	ua := newTestUA(t, addr)
	res := ua.register("sip:eve@example.com", []string{"<sip:eve@192.0.2.1>"})
	if res.StatusCode != 401 || s.Len() != 0 {
		t.Fatalf("unauthenticated: %d, %d stored", res.StatusCode, s.Len())
	}
	res = ua.register("sip:eve@example.com", []string{"<sip:eve@192.0.2.1>"}, `Authorization: Digest username="eve"`)
	if res.StatusCode != 200 || s.Len() != 1 {
		t.Fatalf("authenticated: %d", res.StatusCode)
	}
	if len(seen) != 2 || seen[0] != "sip:eve@example.com" {
		t.Fatalf("hook saw %v", seen)
	}
}

func TestRegistrarConfigValidate(t *testing.T) {
	s := newTestStore(t, Config{TombstoneTTL: time.Minute})
	if _, err := NewRegistrar(s, RegistrarConfig{}); err == nil {
		t.Fatal("MaxExpires above TombstoneTTL accepted")
	}
	if _, err := NewRegistrar(s, RegistrarConfig{MinExpires: 10 * time.Second, MaxExpires: 5 * time.Second}); err == nil {
		t.Fatal("Min > Max accepted")
	}
}

func TestParseQ(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "1": 1000, "0.5": 500, "0.001": 1, "1.000": 1000, "0.25": 250, "1.5": -1, "2": -1, ".5": -1, "0.0001": -1, "": -1, "0.x": -1} {
		q, ok := parseQ(in)
		if (want < 0) == ok || (ok && int(q) != want) {
			t.Errorf("parseQ(%q) = %d %v, want %d", in, q, ok, want)
		}
	}
	for q, want := range map[uint16]string{1000: "1", 500: "0.5", 1: "0.001", 250: "0.25", 0: "0."} {
		if got := formatQ(q); got != want && q != 0 {
			t.Errorf("formatQ(%d) = %q, want %q", q, got, want)
		}
	}
}
