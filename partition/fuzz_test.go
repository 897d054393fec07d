package partition_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
	"github.com/sipha/sipha/partition"
)

// FuzzBuild feeds arbitrary memberships, keys and load factors to Build:
// it must reject bad input with an error, never panic, and place every key
// the same way whatever the order of its inputs.
func FuzzBuild(f *testing.F) {
	f.Add("n1,n2,n3,*s1", "acme,globex,initech", 0.0, "x")
	f.Add("a,b", "k1,k2,k3,k4,k5,k6", 1.05, "k3")
	f.Add("a,a", "k", 2.0, "")
	f.Add(",*", "", 0.5, "z")
	f.Add("*s1,*s2", "t", 1.0, "t")
	f.Fuzz(func(t *testing.T, members, keys string, c float64, probe string) {
		var ms []partition.Member
		for _, id := range strings.Split(members, ",") {
			m := partition.Member{ID: cluster.NodeID(strings.TrimPrefix(id, "*"))}
			if strings.HasPrefix(id, "*") {
				m.Role = partition.Spare
			}
			ms = append(ms, m)
		}
		ks := strings.Split(keys, ",")
		p, err := partition.Build(ms, ks, partition.Options{LoadFactor: c})
		if err != nil {
			return
		}
		slices.Reverse(ms)
		slices.Reverse(ks)
		q, err := partition.Build(ms, ks, partition.Options{LoadFactor: c})
		if err != nil {
			t.Fatalf("accepted in one order, rejected in another: %v", err)
		}
		for _, k := range append(ks, probe) {
			a, b := p.Rank(k), q.Rank(k)
			if !slices.Equal(a, b) || len(a) != len(ms) {
				t.Fatalf("%q ranked %v and %v over %d members", k, a, b, len(ms))
			}
			o, ok := p.Owner(k)
			if ok != (len(a) > 0) || ok && o != a[0] {
				t.Fatalf("%q: owner %q %v, ranking %v", k, o, ok, a)
			}
		}
	})
}

// looseRouter is a Router on node n1 (SIP address 127.0.0.1:5060) of a
// one-node farm holding acme.example.
func looseRouter(tb testing.TB) *partition.Router {
	m := ownership.NewSingle("n1")
	tb.Cleanup(func() { m.Close() })
	p, err := partition.New(m, partition.MemberSourceFunc(func() []partition.Member { return actives(1) }), partition.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() }) // before the manager
	if err := p.Add(context.Background(), "acme.example"); err != nil {
		tb.Fatal(err)
	}
	ua, err := sipgo.NewUA()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ua.Close() })
	client, err := sipgo.NewClient(ua)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := partition.NewRouter(p, client, partition.RouterConfig{
		Addr: func(id cluster.NodeID) (string, bool) { return "127.0.0.1:5060", id == "n1" },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// parseRequest parses a MESSAGE with the given Request-URI, Route (none
// when empty) and To, as sipgo's server would; nil when it does not parse.
func parseRequest(ruri, route, to string) *sip.Request {
	if strings.ContainsAny(ruri+route+to, "\r\n") {
		return nil
	}
	raw := "MESSAGE " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n" +
		"From: <sip:alice@acme.example>;tag=f\r\n" +
		"To: " + to + "\r\n" +
		"Call-ID: c1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
	if route != "" {
		raw += "Route: " + route + "\r\n"
	}
	msg, err := sip.ParseMessage([]byte(raw + "Content-Length: 0\r\n\r\n"))
	if err != nil {
		return nil
	}
	req, _ := msg.(*sip.Request)
	return req
}

// FuzzDecide feeds requests with arbitrary Request-URIs, Route headers and
// To headers, parsed by sipgo as a server would, to a Router: it must
// never panic, and a request it forwards loosely must name a host:port.
func FuzzDecide(f *testing.F) {
	f.Add("sip:bob@127.0.0.1:5060", "<sip:127.0.0.1:5060;lr>, <sip:10.0.0.2;lr>", "<sip:bob@acme.example>;tag=x")
	f.Add("sip:bob@10.0.0.9:5070", "<sip:127.0.0.1:5060;lr>", "<sip:bob@acme.example>;tag=1")
	f.Add("sip:alice@acme.example", "", "<sip:alice@acme.example>")
	f.Add("sip:alice@acme.example", "<sip:[::1]:5060;transport=tcp;lr>", "<sip:alice@acme.example>")
	f.Add("sip:x@y", "<sip:10.0.0.2>", "<sip:x@y>;tag=t")
	f.Add("sip:x@y", "garbage", "<sip:x@y>")
	r := looseRouter(f)
	f.Fuzz(func(t *testing.T, ruri, route, to string) {
		req := parseRequest(ruri, route, to)
		if req == nil {
			return
		}
		d, err := r.Decide(req)
		if err == nil && d.Loose && !d.Local {
			if _, _, err := net.SplitHostPort(d.Addr); err != nil {
				t.Fatalf("loose forward to %q: %v", d.Addr, err)
			}
		}
	})
}
