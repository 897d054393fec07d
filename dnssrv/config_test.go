package dnssrv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Timeout: -1},
		{Attempts: -1},
		{Family: 9},
		{UDPSize: 100},
		{Transports: []Transport{UDP, UDP}},
		{Transports: []Transport{0}},
		{Servers: []string{"no-port"}},
		{MaxTTL: time.Second, NegativeTTL: time.Minute},
	} {
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v", c, err)
		}
		if _, err := New(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("New(%+v): %v", c, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal("zero Config:", err)
	}
}

func TestServersFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(path, []byte("search example.com\nnameserver 127.0.0.1\nnameserver ::1\n"), 0o644)
	r, err := New(Config{ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if want := []string{"127.0.0.1:53", "[::1]:53"}; !slices.Equal(r.servers, want) {
		t.Fatalf("servers %v, want %v", r.servers, want)
	}
	if _, err := New(Config{ResolvConf: filepath.Join(dir, "missing")}); !errors.Is(err, ErrNoServers) {
		t.Fatalf("missing resolv.conf: %v", err)
	}
	os.WriteFile(path, []byte("# nothing\n"), 0o644)
	if _, err := New(Config{ResolvConf: path}); !errors.Is(err, ErrNoServers) {
		t.Fatalf("resolv.conf without nameservers: %v", err)
	}
}

// A silent first server costs one timeout; the second answers.
func TestSecondServerAnswers(t *testing.T) {
	silent := startZone(t)
	silent.Handle(func(dns.ResponseWriter, *dns.Msg) {})
	good := startZone(t, "ok.example. 60 IN A 192.0.2.7")
	r, err := New(Config{Servers: []string{silent.Addr, good.Addr}, Timeout: 100 * time.Millisecond, Family: IPv4Only})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ts, err := r.ResolveString(context.Background(), "sip:ok.example:5060")
	if err != nil || len(ts) != 1 || ts[0].Addr.String() != "192.0.2.7" {
		t.Fatalf("%v %v", ts, err)
	}
	if silent.Queries() == 0 {
		t.Fatal("the first server was never asked")
	}
}

func TestTransportNames(t *testing.T) {
	for tr := UDP; tr <= WSS; tr++ {
		got, err := ParseTransport(tr.String())
		if err != nil || got != tr {
			t.Errorf("%v round trip: %v %v", tr, got, err)
		}
		if svc, ok := transportForService(tr.NAPTRService()); !ok || svc != tr {
			t.Errorf("%v service %q", tr, tr.NAPTRService())
		}
	}
	if TLS.SRVPrefix() != "_sips._tcp." || WSS.SRVPrefix() != "_sips._ws." || !TLS.Secure() || UDP.Secure() {
		t.Fatal("RFC 3263 names wrong")
	}
	if WS.DefaultPort() != 80 || TLS.DefaultPort() != 5061 || Transport(0).DefaultPort() != 0 {
		t.Fatal("default ports wrong")
	}
	if Transport(99).String() != "Transport(99)" {
		t.Fatal(Transport(99).String())
	}
}
