package dnssrv

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Transport is a SIP transport protocol as RFC 3263 and RFC 7118 name them.
type Transport uint8

// The transports a SIP target can use. The zero value means "not chosen".
const (
	UDP Transport = iota + 1
	TCP
	TLS
	SCTP
	TLSSCTP // TLS over SCTP, the SIPS+D2S service
	WS      // WebSocket, RFC 7118
	WSS     // secure WebSocket, RFC 7118
)

// transportInfo holds what RFC 3263/7118 and RFC 3261 fix for each transport.
type transportInfo struct {
	name    string // as in a Via header and in sipgo
	param   string // the transport= URI parameter value
	service string // NAPTR service field
	srv     string // SRV owner-name prefix
	port    uint16 // default port
	secure  bool
}

var transports = [...]transportInfo{
	UDP:     {"UDP", "udp", "SIP+D2U", "_sip._udp.", 5060, false},
	TCP:     {"TCP", "tcp", "SIP+D2T", "_sip._tcp.", 5060, false},
	TLS:     {"TLS", "tls", "SIPS+D2T", "_sips._tcp.", 5061, true},
	SCTP:    {"SCTP", "sctp", "SIP+D2S", "_sip._sctp.", 5060, false},
	TLSSCTP: {"TLS-SCTP", "tls-sctp", "SIPS+D2S", "_sips._sctp.", 5061, true},
	WS:      {"WS", "ws", "SIP+D2W", "_sip._ws.", 80, false},
	WSS:     {"WSS", "wss", "SIPS+D2W", "_sips._ws.", 443, true},
}

func (t Transport) valid() bool { return t >= UDP && t <= WSS }

// String returns the transport as written in a Via header ("UDP", "TLS", ...).
func (t Transport) String() string {
	if !t.valid() {
		return "Transport(" + strconv.Itoa(int(t)) + ")"
	}
	return transports[t].name
}

// DefaultPort is the port RFC 3261 §19.1.2 and RFC 7118 give the transport.
func (t Transport) DefaultPort() uint16 {
	if !t.valid() {
		return 0
	}
	return transports[t].port
}

// Secure reports whether the transport runs over TLS, as a SIPS URI requires.
func (t Transport) Secure() bool { return t.valid() && transports[t].secure }

// SRVPrefix is the service and protocol labels of the SRV owner name, such
// as "_sips._tcp." for TLS (RFC 3263 §4.2; not "_sip._tls.").
func (t Transport) SRVPrefix() string {
	if !t.valid() {
		return ""
	}
	return transports[t].srv
}

// NAPTRService is the NAPTR service field that selects the transport.
func (t Transport) NAPTRService() string {
	if !t.valid() {
		return ""
	}
	return transports[t].service
}

// ParseTransport reads a transport name as found in a transport= URI
// parameter or a Via header, in any case.
func ParseTransport(s string) (Transport, error) {
	for t := UDP; t <= WSS; t++ {
		if strings.EqualFold(s, transports[t].param) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownTransport, s)
}

// transportForService maps a NAPTR service field to its transport; NAPTR
// service fields are case-insensitive (RFC 3403 §4.1).
func transportForService(s string) (Transport, bool) {
	for t := UDP; t <= WSS; t++ {
		if strings.EqualFold(s, transports[t].service) {
			return t, true
		}
	}
	return 0, false
}

// Target is one place to send a request: a transport, an address and a
// port, with the host name it was found under (an SRV target or the URI
// host) for TLS server-name checks and logs.
type Target struct {
	Transport Transport
	Port      uint16 // beside Transport: the struct packs into 48 bytes
	Host      string
	Addr      netip.Addr
}

// AddrPort is the socket address of the target.
func (t Target) AddrPort() netip.AddrPort { return netip.AddrPortFrom(t.Addr, t.Port) }

// String formats the target the way sipdig prints it: TRANSPORT HOST PORT IP.
func (t Target) String() string {
	return t.Transport.String() + " " + t.Host + " " + strconv.Itoa(int(t.Port)) + " " + t.Addr.String()
}
