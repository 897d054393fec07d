package dnssrv

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"
)

// Sentinel errors. Errors returned by the package wrap one of these, so
// callers test them with errors.Is.
var (
	ErrBadURI             = errors.New("dnssrv: bad SIP URI")
	ErrUnknownTransport   = errors.New("dnssrv: unknown transport")
	ErrUnsupported        = errors.New("dnssrv: transport not supported by this client")
	ErrNotFound           = errors.New("dnssrv: no such host")
	ErrServiceUnavailable = errors.New("dnssrv: service decidedly not available (SRV target \".\")")
	ErrNoTargets          = errors.New("dnssrv: no usable targets")
	ErrServerFailure      = errors.New("dnssrv: DNS server failure")
	ErrBadAnswer          = errors.New("dnssrv: malformed DNS answer")
	ErrTooDeep            = errors.New("dnssrv: CNAME or NAPTR chain too long or looping")
	ErrTooManyRecords     = errors.New("dnssrv: answer has too many records")
	ErrNoServers          = errors.New("dnssrv: no DNS servers configured")
	ErrClosed             = errors.New("dnssrv: resolver closed")
	ErrBadConfig          = errors.New("dnssrv: bad config")
)

// Family says which address families a target may have and which comes first.
type Family uint8

const (
	PreferIPv4 Family = iota // A then AAAA (the zero value)
	PreferIPv6               // AAAA then A
	IPv4Only                 // A only
	IPv6Only                 // AAAA only
)

// Config configures a Resolver. The zero value means the defaults written
// beside each field.
type Config struct {
	// Servers are the DNS servers as host:port, asked in order. Empty: the
	// nameservers of ResolvConf.
	Servers []string
	// ResolvConf is read when Servers is empty. Default "/etc/resolv.conf".
	ResolvConf string
	// Timeout bounds one query to one server. Default 2s.
	Timeout time.Duration
	// Attempts is how many rounds over all servers a query gets. Default 2.
	Attempts int
	// UDPSize is the EDNS0 buffer size offered; larger answers come
	// truncated and are asked again over TCP. Default 1232.
	UDPSize uint16

	// Transports the caller can use, most preferred first. Targets on other
	// transports are never returned, and with no NAPTR records the SRV
	// queries are made in this order. Default UDP, TCP, TLS.
	Transports []Transport
	// Family selects A and/or AAAA lookups and their order. Default PreferIPv4.
	Family Family
	// IgnoreNAPTR skips the NAPTR step and goes straight to SRV, like
	// Kamailio's default (dns_try_naptr=no). Default false: NAPTR is used,
	// as OpenSIPS and RFC 3263 do.
	IgnoreNAPTR bool

	// CacheSize bounds the record cache and the target cache, each in
	// entries; the least recently used entry goes first. Default 4096.
	CacheSize int
	// MaxTTL caps how long any answer is cached. Default 1h.
	MaxTTL time.Duration
	// NegativeTTL is how long a negative answer without an SOA record is
	// cached (RFC 2308 gives none; a short time still collapses bursts).
	// Answers with an SOA use min(SOA TTL, SOA MINIMUM). Default 5s.
	NegativeTTL time.Duration
	// StaleWhileRevalidate, if positive, lets an expired entry be served
	// for up to this long while one background query refreshes it.
	StaleWhileRevalidate time.Duration

	// MaxRecords is the most records accepted in one answer section;
	// larger answers are an error. Default 256.
	MaxRecords int
	// MaxDepth bounds CNAME chains and non-terminal NAPTR hops. Default 8.
	MaxDepth int
	// MaxTargets caps the target list of one URI. Default 64.
	MaxTargets int

	// Blacklist is shared by every lookup of this resolver and may be
	// shared between resolvers. Nil: the resolver makes its own with
	// default settings and the same clock.
	Blacklist *Blacklist
	// SkipBlacklisted makes iterators leave blacklisted targets out. By
	// default they are tried last, so that a request still has somewhere
	// to go when every target failed recently.
	SkipBlacklisted bool

	// Now is the clock; it is called concurrently and must not block.
	// Default time.Now.
	Now func() time.Time
	// Rand drives the RFC 2782 weighted order. The resolver owns it after
	// New and serializes its use; do not use it elsewhere. Default: a PCG
	// with a random seed.
	Rand *rand.Rand
	// Logger gets debug logs of queries and failures. Default: discard.
	Logger *slog.Logger
}

// Validate reports fields that are out of range or contradict each other.
func (c Config) Validate() error {
	switch {
	case c.Timeout < 0, c.NegativeTTL < 0, c.MaxTTL < 0, c.StaleWhileRevalidate < 0:
		return fmt.Errorf("%w: negative duration", ErrBadConfig)
	case c.Attempts < 0, c.CacheSize < 0, c.MaxRecords < 0, c.MaxDepth < 0, c.MaxTargets < 0:
		return fmt.Errorf("%w: negative count", ErrBadConfig)
	case c.Family > IPv6Only:
		return fmt.Errorf("%w: unknown family %d", ErrBadConfig, c.Family)
	case c.UDPSize != 0 && c.UDPSize < 512:
		return fmt.Errorf("%w: UDPSize %d below 512", ErrBadConfig, c.UDPSize)
	case c.MaxTTL > 0 && c.NegativeTTL > c.MaxTTL:
		return fmt.Errorf("%w: NegativeTTL above MaxTTL", ErrBadConfig)
	}
	seen := 0
	for _, t := range c.Transports {
		if !t.valid() {
			return fmt.Errorf("%w: %w %d", ErrBadConfig, ErrUnknownTransport, t)
		}
		if seen&(1<<t) != 0 {
			return fmt.Errorf("%w: transport %v listed twice", ErrBadConfig, t)
		}
		seen |= 1 << t
	}
	for _, s := range c.Servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%w: server %q: %w", ErrBadConfig, s, err)
		}
	}
	return nil
}

// withDefaults fills in zero fields.
func (c Config) withDefaults() Config {
	if c.ResolvConf == "" {
		c.ResolvConf = "/etc/resolv.conf"
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Attempts == 0 {
		c.Attempts = 2
	}
	if c.UDPSize == 0 {
		c.UDPSize = 1232
	}
	if len(c.Transports) == 0 {
		c.Transports = []Transport{UDP, TCP, TLS}
	}
	if c.CacheSize == 0 {
		c.CacheSize = 4096
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = time.Hour
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 256
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = 8
	}
	if c.MaxTargets == 0 {
		c.MaxTargets = 64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
