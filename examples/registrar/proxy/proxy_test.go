package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
	"github.com/sipha/sipha/dialog"
	"github.com/sipha/sipha/usrloc"
)

func ExampleCDRID() {
	id := dialog.ID{CallID: "a84b4c76e66710@pc33.example.com", FromTag: "1928301774"}
	fmt.Println(CDRID(id))
	fmt.Println(CDRID(id) == CDRID(dialog.ID{CallID: id.CallID, FromTag: id.FromTag}))
	// Output:
	// dlg-fe0f8a1b4489e6e5d7caa5934f041753
	// true
}

func TestTargets(t *testing.T) {
	p := &Proxy{b: Blocks{Store: mustStore(t, "b")}}
	cases := []struct {
		name string
		b    usrloc.Binding
		ok   bool
		want target
	}{
		{"udp behind NAT goes to the source", usrloc.Binding{Contact: "sip:bob@10.0.0.5:5060", Received: "203.0.113.9:40001",
			Socket: "udp:192.0.2.1:5060", Node: "a"}, true, target{transport: "UDP", dest: "203.0.113.9:40001"}},
		{"path goes through the edge", usrloc.Binding{Contact: "sip:bob@10.0.0.5", Received: "198.51.100.7:5060",
			Socket: "udp:192.0.2.1:5060", Path: "<sip:edge1.example;lr>,<sip:edge2.example:5070;lr>", Node: "a"}, true,
			target{transport: "UDP", route: []sip.Uri{{Scheme: "sip", Host: "edge1.example"}, {Scheme: "sip", Host: "edge2.example", Port: 5070}}}},
		{"tcp flow on this node", usrloc.Binding{Contact: "sip:bob@10.0.0.5:5060;transport=tcp", Received: "203.0.113.9:40001",
			Socket: "tcp:192.0.2.1:5060", Node: "b"}, true, target{transport: "TCP", dest: "203.0.113.9:40001"}},
		{"tcp flow on another node behind NAT", usrloc.Binding{Contact: "sip:bob@10.0.0.5:5060;transport=tcp",
			Received: "203.0.113.9:40001", Socket: "tcp:192.0.2.1:5060", Node: "a"}, false, target{}},
		{"tcp without NAT from another node", usrloc.Binding{Contact: "sip:bob@198.51.100.7:5062;transport=tcp",
			Received: "198.51.100.7:5062", Socket: "tcp:192.0.2.1:5060", Node: "a"}, true, target{transport: "TCP", dest: "198.51.100.7:5062"}},
		{"unparsable contact", usrloc.Binding{Contact: "sip:", Socket: "udp:192.0.2.1:5060"}, false, target{}},
	}
	for _, tc := range cases {
		got, ok := p.targetOf(&tc.b)
		if ok != tc.ok {
			t.Errorf("%s: ok %v", tc.name, ok)
			continue
		}
		if !ok {
			continue
		}
		if got.transport != tc.want.transport || got.dest != tc.want.dest || len(got.route) != len(tc.want.route) {
			t.Errorf("%s: got %+v", tc.name, got)
			continue
		}
		for i := range got.route {
			if got.route[i].Host != tc.want.route[i].Host || got.route[i].Port != tc.want.route[i].Port {
				t.Errorf("%s: route %d is %s", tc.name, i, got.route[i].String())
			}
		}
	}
}

func mustStore(t *testing.T, node string) *usrloc.Store {
	st, err := usrloc.New(usrloc.Config{Node: cluster.NodeID(node)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSplitPath(t *testing.T) {
	for in, want := range map[string]string{
		"<sip:a;lr>,<sip:b;lr>":            "sip:a;lr|sip:b;lr",
		` "x, y" <sip:a;lr> , <sip:b>`:     "sip:a;lr|sip:b",
		"sip:a;lr":                         "sip:a;lr",
		"<sip:a;p=\"1,2\";lr>":             "sip:a;p=\"1,2\";lr",
		",,":                               "",
		"<sip:a;lr>, <sip:b;maddr=x,y;lr>": "sip:a;lr|sip:b;maddr=x,y;lr",
	} {
		if got := strings.Join(splitPath(in), "|"); got != want {
			t.Errorf("splitPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestValidate feeds parsed requests to validate: the reason phrases are
// what a UA sees in the 400.
func TestValidate(t *testing.T) {
	base := "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	for _, tc := range []struct {
		old, new string
		code     int
		reason   string
	}{
		{"", "", 0, ""},
		{"Call-ID: c1\r\n", "", 400, "Missing Call-ID"},
		{";tag=1", "", 400, "Missing From Tag"},
		{"CSeq: 1 INVITE", "CSeq: 1 ACK", 400, "CSeq Method Mismatch"},
		{"Max-Forwards: 70", "Max-Forwards: 0", 483, "Too Many Hops"},
		{"INVITE sip:bob@example.com", "INVITE tel:+1555", 416, "Unsupported URI Scheme"},
		{"To: <sip:bob@example.com>\r\n", "", 400, "Missing From or To"},
	} {
		msg := base
		if tc.old != "" {
			msg = strings.Replace(base, tc.old, tc.new, 1)
		}
		m, err := sip.ParseMessage([]byte(msg))
		if err != nil {
			t.Fatalf("%q: %v", tc.reason, err)
		}
		code, reason := validate(m.(*sip.Request))
		if code != tc.code || reason != tc.reason {
			t.Errorf("replace %q: got %d %q, want %d %q", tc.old, code, reason, tc.code, tc.reason)
		}
	}
}

// FuzzRequest runs whatever sipgo's parser accepts through validate and
// the Path splitter: no input may panic them.
func FuzzRequest(f *testing.F) {
	f.Add([]byte("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n" +
		"To: <sip:bob@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("BYE sip:x SIP/2.0\r\nRoute: <sip:127.0.0.1;lr>\r\nCSeq: 2 BYE\r\n\r\n"))
	f.Add([]byte("<sip:a;lr>,<sip:b;lr>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		splitPath(string(data))
		m, err := sip.ParseMessage(data)
		if err != nil {
			return
		}
		if req, ok := m.(*sip.Request); ok {
			if code, reason := validate(req); code != 0 && reason == "" {
				t.Fatalf("status %d without a reason", code)
			}
		}
	})
}

// TestCloseStopsEverything starts a one-node stack and proxy, closes both
// twice, and checks that no goroutine outlives them.
func TestCloseStopsEverything(t *testing.T) {
	clustertest.CheckLeaks(t)
	st, err := Start(context.Background(), StackConfig{ID: "solo", ClusterAddr: "127.0.0.1:0", Secret: clustertest.Secret,
		DataDir: t.TempDir(), CPS: 10, CDRURLs: []string{"http://127.0.0.1:1/cdr"},
		Replicator: usrloc.ReplicatorConfig{BootstrapWait: 100 * time.Millisecond}, Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(st.Blocks(), Config{Listen: "127.0.0.1:0", Logger: clustertest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "one node healthy", func() bool { return p.Health() == "" })
	if got := rawSIP(t, p.Addr(), invite("nobody", 1, "")); got != "SIP/2.0 404 Not Found" {
		t.Fatalf("INVITE to nobody: %q", got)
	}
	// An in-dialog request that lost its route set names a domain: the
	// proxy looks the user up instead of resolving the name (no binding:
	// 404, where a DNS attempt would end in 503).
	bye := strings.Replace(strings.Replace(invite("nobody", 2, ""), "INVITE", "BYE", 2), "To: <sip:nobody@example.com>",
		"To: <sip:nobody@example.com>;tag=x", 1)
	if got := rawSIP(t, p.Addr(), bye); got != "SIP/2.0 404 Not Found" {
		t.Fatalf("BYE without a route set: %q", got)
	}
	// A response that matches no transaction (a retransmitted 2xx after
	// the INVITE transaction ended) goes on to the next Via, without ours.
	got := rawSIPMessage(t, p.Addr(), "SIP/2.0 200 OK\nVia: SIP/2.0/UDP "+p.Addr()+";branch=z9hG4bK-gone\n"+
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-caller\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@y>;tag=2\n"+
		"Call-ID: stray@test\nCSeq: 1 INVITE\nContent-Length: 0\n\n")
	if !strings.HasPrefix(got, "SIP/2.0 200 OK\r\n") || strings.Count(got, "Via:") != 1 || !strings.Contains(got, "z9hG4bK-caller") {
		t.Fatalf("stray 200 forwarded as %q", got)
	}
	hs := httptest.NewServer(p.HTTPHandler())
	defer hs.Close()
	if code, body := get(t, hs.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz before Close: %d %q", code, body)
	}
	for range 2 {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := get(t, hs.URL+"/healthz"); code != 503 || body != "proxy closed\n" {
		t.Fatalf("healthz after Close: %d %q", code, body)
	}
	for range 2 {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(Blocks{}, Config{Listen: "127.0.0.1:0"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New without blocks: %v", err)
	}
	if _, err := New(st.Blocks(), Config{Listen: "127.0.0.1:0", Advertise: "nohostport"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("New with a bad Advertise: %v", err)
	}
	if _, err := Start(context.Background(), StackConfig{ID: "x"}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Start without ClusterAddr: %v", err)
	}
}
