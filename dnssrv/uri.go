package dnssrv

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// planKey is what RFC 3263 §4 resolution depends on in a URI: the host,
// an explicit port, an explicit transport and whether the URI is SIPS.
// It is comparable and built without allocating, so a cache hit is cheap.
type planKey struct {
	host   string
	port   uint16
	tr     Transport
	secure bool
}

func (k planKey) String() string {
	return fmt.Sprintf("%s|%d|%d|%t", k.host, k.port, k.tr, k.secure)
}

// keyFor applies RFC 3263 §4.1's first rules: it reads the scheme, the
// transport parameter and the port, and it returns the literal address
// when the host is one (such a URI needs no DNS).
func (r *Resolver) keyFor(u *sip.Uri) (planKey, netip.Addr, error) {
	var k planKey
	switch {
	case u == nil:
		return k, netip.Addr{}, fmt.Errorf("%w: nil", ErrBadURI)
	case strings.EqualFold(u.Scheme, "sips"):
		k.secure = true
	case strings.EqualFold(u.Scheme, "sip"):
	default:
		return k, netip.Addr{}, fmt.Errorf("%w: scheme %q is not sip or sips", ErrBadURI, u.Scheme)
	}
	host := u.Host
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return k, netip.Addr{}, fmt.Errorf("%w: empty host", ErrBadURI)
	}
	if u.Port < 0 || u.Port > 65535 {
		return k, netip.Addr{}, fmt.Errorf("%w: port %d", ErrBadURI, u.Port)
	}
	k.port = uint16(u.Port)
	if v, ok := u.UriParams.Get("transport"); ok {
		t, err := ParseTransport(v)
		if err != nil {
			return k, netip.Addr{}, fmt.Errorf("%w: %w", ErrBadURI, err)
		}
		if k.secure {
			// RFC 3261 §26.2: a SIPS URI runs over TLS whatever the
			// transport parameter names underneath it.
			switch t {
			case TCP:
				t = TLS
			case SCTP:
				t = TLSSCTP
			case WS:
				t = WSS
			case UDP:
				return k, netip.Addr{}, fmt.Errorf("%w: sips with transport=udp", ErrBadURI)
			}
		}
		if !r.supports(t) {
			return k, netip.Addr{}, fmt.Errorf("%w: %v", ErrUnsupported, t)
		}
		k.tr = t
	}
	if looksNumeric(host) {
		if a, err := netip.ParseAddr(host); err == nil {
			return k, a, nil
		}
	}
	k.host = strings.ToLower(host) // no allocation when already lower case
	return k, netip.Addr{}, nil
}

// looksNumeric filters out domain names before netip.ParseAddr, whose
// error for a name allocates on every cached Resolve.
func looksNumeric(host string) bool {
	if strings.IndexByte(host, ':') >= 0 {
		return true
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func (r *Resolver) supports(t Transport) bool { return t.valid() && r.supported&(1<<t) != 0 }

// defaultTransport is RFC 3263's choice when nothing names one: UDP for
// SIP, TLS for SIPS, or else the caller's most preferred that fits.
func (r *Resolver) defaultTransport(secure bool) (Transport, error) {
	want := UDP
	if secure {
		want = TLS
	}
	if r.supports(want) {
		return want, nil
	}
	for _, t := range r.cfg.Transports {
		if !secure || t.Secure() {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: no secure transport for a SIPS URI", ErrUnsupported)
}

// literal is the one target of a URI whose host is an IP address.
func (r *Resolver) literal(k planKey, a netip.Addr, hostText string) (Target, error) {
	t := k.tr
	if t == 0 {
		var err error
		if t, err = r.defaultTransport(k.secure); err != nil {
			return Target{}, err
		}
	}
	port := k.port
	if port == 0 {
		port = t.DefaultPort()
	}
	return Target{Transport: t, Host: hostText, Port: port, Addr: a.Unmap()}, nil
}

// ParseURI parses a SIP or SIPS URI string for Resolve.
func ParseURI(s string) (*sip.Uri, error) {
	u := new(sip.Uri)
	if err := sip.ParseUri(s, u); err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadURI, s, err)
	}
	if !strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips") {
		return nil, fmt.Errorf("%w: %q: not a sip or sips URI", ErrBadURI, s)
	}
	return u, nil
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
