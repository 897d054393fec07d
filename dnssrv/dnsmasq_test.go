package dnssrv

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/sipha/sipha/dnssrv/dnssrvtest"
)

// dnsmasqZone serves example.com from a real dnsmasq, the same shape as
// the in-process zone: NAPTR to SIPS/TCP/UDP SRV, weighted UDP SRV, a
// backup priority, A and AAAA records, and a host with A records only.
var dnsmasqZone = []string{
	"--local=/example.com/", // answer NXDOMAIN/NODATA here instead of forwarding
	"--naptr-record=example.com,30,50,S,SIP+D2U,,_sip._udp.example.com",
	"--naptr-record=example.com,10,50,S,SIPS+D2T,,_sips._tcp.example.com",
	"--naptr-record=example.com,20,50,S,SIP+D2T,,_sip._tcp.example.com",
	"--srv-host=_sips._tcp.example.com,tls1.example.com,5061,10,0",
	"--srv-host=_sip._tcp.example.com,tcp1.example.com,5060,10,0",
	"--srv-host=_sip._udp.example.com,sip1.example.com,5060,10,60",
	"--srv-host=_sip._udp.example.com,sip2.example.com,5070,10,40",
	"--srv-host=_sip._udp.example.com,backup.example.com,5060,20,0",
	"--host-record=sip1.example.com,192.0.2.1",
	"--host-record=sip2.example.com,192.0.2.2,2001:db8::2",
	"--host-record=backup.example.com,192.0.2.9",
	"--host-record=tls1.example.com,192.0.2.10",
	"--host-record=tcp1.example.com,192.0.2.11",
	"--host-record=plain.example.com,198.51.100.20",
}

// startDnsmasq runs dnsmasq for the test. Without the binary the test
// skips, or fails under CI (SIPHA_CI=1), which installs it.
func startDnsmasq(t *testing.T, args ...string) *dnssrvtest.Dnsmasq {
	t.Helper()
	d, err := dnssrvtest.StartDnsmasq(context.Background(), args...)
	if errors.Is(err, dnssrvtest.ErrNoDnsmasq) {
		if os.Getenv("SIPHA_CI") == "1" {
			t.Fatalf("SIPHA_CI=1 but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDnsmasq(t *testing.T) {
	d := startDnsmasq(t, dnsmasqZone...)
	ctx := context.Background()
	for _, tc := range []struct {
		uri  string
		mod  func(*Config)
		want []string
		err  error
	}{
		{uri: "sip:example.com", want: []string{
			"TLS tls1.example.com 5061 192.0.2.10",
			"TCP tcp1.example.com 5060 192.0.2.11",
			"UDP sip1.example.com 5060 192.0.2.1|UDP sip2.example.com 5070 192.0.2.2|UDP sip2.example.com 5070 2001:db8::2",
			"UDP sip1.example.com 5060 192.0.2.1|UDP sip2.example.com 5070 192.0.2.2|UDP sip2.example.com 5070 2001:db8::2",
			"UDP sip1.example.com 5060 192.0.2.1|UDP sip2.example.com 5070 192.0.2.2|UDP sip2.example.com 5070 2001:db8::2",
			"UDP backup.example.com 5060 192.0.2.9",
		}},
		{uri: "sips:example.com", want: []string{"TLS tls1.example.com 5061 192.0.2.10"}},
		{uri: "sip:example.com;transport=tcp", want: []string{"TCP tcp1.example.com 5060 192.0.2.11"}},
		{uri: "sip:example.com", mod: func(c *Config) { c.IgnoreNAPTR = true; c.Transports = []Transport{UDP} }, want: []string{
			"UDP sip1.example.com 5060 192.0.2.1|UDP sip2.example.com 5070 192.0.2.2",
			"UDP sip1.example.com 5060 192.0.2.1|UDP sip2.example.com 5070 192.0.2.2",
			"UDP backup.example.com 5060 192.0.2.9",
		}},
		{uri: "sip:plain.example.com", want: []string{"UDP plain.example.com 5060 198.51.100.20"}},
		{uri: "sip:sip2.example.com:5080", mod: func(c *Config) { c.Family = PreferIPv6 }, want: []string{
			"UDP sip2.example.com 5080 2001:db8::2",
			"UDP sip2.example.com 5080 192.0.2.2",
		}},
		{uri: "sip:missing.example.com", err: ErrNotFound},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			mod := tc.mod
			if tc.uri == "sip:example.com" && mod != nil {
				// Only UDP with AAAA off keeps the expected list short.
				inner := mod
				mod = func(c *Config) { inner(c); c.Family = IPv4Only }
			}
			r := newTestResolver(t, d.Addr, nil, mod)
			got, err := r.ResolveString(ctx, tc.uri)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\ndnsmasq said: %s", err, d.Output())
			}
			checkTargets(t, got, tc.want)
		})
	}
}
