package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sipha/sipha/dnssrv/dnssrvtest"
)

var zone = []string{
	`example.com. 60 IN NAPTR 10 50 "s" "SIPS+D2T" "" _sips._tcp.example.com.`,
	`example.com. 60 IN NAPTR 20 50 "s" "SIP+D2U" "" _sip._udp.example.com.`,
	`_sips._tcp.example.com. 60 IN SRV 10 0 5061 sip1.example.com.`,
	`_sip._udp.example.com. 60 IN SRV 10 0 5060 sip1.example.com.`,
	`_sip._udp.example.com. 60 IN SRV 20 0 5060 sip2.example.com.`,
	`sip1.example.com. 60 IN A 192.0.2.1`,
	`sip2.example.com. 60 IN A 192.0.2.2`,
	`sip2.example.com. 60 IN AAAA 2001:db8::2`,
}

func sipdig(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSipdig(t *testing.T) {
	srv, err := dnssrvtest.NewServer(zone...)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	code, out, errOut := sipdig(t, "-server", srv.Addr, "sip:example.com")
	want := "TLS sip1.example.com 5061 192.0.2.1\n" +
		"UDP sip1.example.com 5060 192.0.2.1\n" +
		"UDP sip2.example.com 5060 192.0.2.2\n" +
		"UDP sip2.example.com 5060 2001:db8::2\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errOut)
	}

	code, out, _ = sipdig(t, "-server", srv.Addr, "-family", "6", "-transports", "udp", "sip:example.com")
	if code != 0 || out != "UDP sip2.example.com 5060 2001:db8::2\n" {
		t.Fatalf("-family 6 -transports udp: exit %d\n%s", code, out)
	}

	code, out, _ = sipdig(t, "-server", srv.Addr, "-v", "sips:example.com")
	if code != 0 || !strings.Contains(out, "; example.com. 60 IN NAPTR 10 50 \"s\" \"SIPS+D2T\"") ||
		!strings.Contains(out, "; _sips._tcp.example.com. 60 IN SRV 10 0 5061 sip1.example.com.") ||
		!strings.HasSuffix(out, "\nTLS sip1.example.com 5061 192.0.2.1\n") {
		t.Fatalf("-v: exit %d\n%s", code, out)
	}

	code, _, errOut = sipdig(t, "-server", srv.Addr, "sip:nothing.example")
	if code != 1 || !strings.Contains(errOut, "no such host") {
		t.Fatalf("missing host: exit %d, stderr %q", code, errOut)
	}
}

func TestSipdigUsage(t *testing.T) {
	code, _, errOut := sipdig(t, "-h")
	if code != 0 || !strings.Contains(errOut, "usage: sipdig") || !strings.Contains(errOut, "-server") {
		t.Fatalf("-h: exit %d\n%s", code, errOut)
	}
	for _, args := range [][]string{
		{},
		{"-family", "5", "sip:a"},
		{"-transports", "pigeon", "sip:a"},
		{"-server", "127.0.0.1:53", "http://example.com"},
		{"-server", "no-port", "sip:a"},
		{"sip:a", "sip:b"},
	} {
		if code, _, _ := sipdig(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// TestSipdigDnsmasq runs sipdig against a real dnsmasq, the way
// dnssrv/README.md documents it.
func TestSipdigDnsmasq(t *testing.T) {
	d, err := dnssrvtest.StartDnsmasq(context.Background(),
		"--local=/example.com/",
		"--naptr-record=example.com,10,50,S,SIP+D2U,,_sip._udp.example.com",
		"--srv-host=_sip._udp.example.com,sip1.example.com,5060,10,0",
		"--host-record=sip1.example.com,192.0.2.1")
	if errors.Is(err, dnssrvtest.ErrNoDnsmasq) {
		if os.Getenv("SIPHA_CI") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	code, out, errOut := sipdig(t, "-server", d.Addr, "sip:example.com")
	if code != 0 || out != "UDP sip1.example.com 5060 192.0.2.1\n" {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}
