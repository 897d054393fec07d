package usrloc

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RegistrarConfig configures a Registrar. The zero value of every field
// means its default.
type RegistrarConfig struct {
	// MinExpires: a shorter non-zero expiry gets 423 Interval Too Brief
	// with a Min-Expires header. Default 60 s.
	MinExpires time.Duration
	// MaxExpires caps a requested expiry; default 3600 s. The store's
	// TombstoneTTL must not be shorter.
	MaxExpires time.Duration
	// DefaultExpires applies when neither the contact's expires parameter
	// nor an Expires header says; default 3600 s.
	DefaultExpires time.Duration
	// Authenticate, when set, runs first; see Authenticator.
	Authenticate Authenticator
	// AOR maps a REGISTER to its address of record; default
	// CanonicalAOR of the To URI.
	AOR func(req *sip.Request) (string, error)
	// Socket names the local socket a request arrived on, as stored in
	// Binding.Socket; default "transport:local-ip:port" of the server
	// transaction's connection. For a socket bound to 0.0.0.0 or :: the
	// default takes, in place of the wildcard, the address the host
	// sends from to the UA (the source of the answer and of keepalives
	// from that socket): sipgo cannot tell which address a datagram was
	// sent to. Where several addresses share a route (a VIP beside the
	// primary address), bind the socket to the address or set Socket.
	Socket func(req *sip.Request, tx sip.ServerTransaction) string
	// Now is the clock for the Date header and remaining expiry; default
	// time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c RegistrarConfig) withDefaults() RegistrarConfig {
	if c.MinExpires == 0 {
		c.MinExpires = 60 * time.Second
	}
	if c.MaxExpires == 0 {
		c.MaxExpires = time.Hour
	}
	if c.DefaultExpires == 0 {
		c.DefaultExpires = time.Hour
	}
	if c.AOR == nil {
		c.AOR = func(req *sip.Request) (string, error) {
			to := req.To()
			if to == nil {
				return "", errors.New("no To header")
			}
			return CanonicalAOR(&to.Address)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration after defaults are applied.
func (c RegistrarConfig) Validate() error {
	c = c.withDefaults()
	if c.MinExpires < time.Second || c.MaxExpires < c.MinExpires ||
		c.DefaultExpires < c.MinExpires || c.DefaultExpires > c.MaxExpires {
		return errors.New("usrloc: need 1s ≤ MinExpires ≤ DefaultExpires ≤ MaxExpires")
	}
	return nil
}

// Authenticator decides whether a REGISTER may proceed.
//
// Concurrency: called concurrently for different requests. Returning false
// means the authenticator has already answered the request (401 with a
// challenge, 403); the registrar then does nothing more.
type Authenticator interface {
	Authenticate(req *sip.Request, tx sip.ServerTransaction, aor string) bool
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(req *sip.Request, tx sip.ServerTransaction, aor string) bool

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(req *sip.Request, tx sip.ServerTransaction, aor string) bool {
	return f(req, tx, aor)
}

// Registrar is an RFC 3261 §10.3 registrar over a Store, as a sipgo
// handler: srv.OnRegister(reg.Handle).
type Registrar struct {
	store *Store
	cfg   RegistrarConfig
}

// NewRegistrar returns a registrar writing to store.
func NewRegistrar(store *Store, cfg RegistrarConfig) (*Registrar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.MaxExpires > store.cfg.TombstoneTTL {
		return nil, fmt.Errorf("usrloc: MaxExpires %v above the store's TombstoneTTL %v: a late write could outlive its deletion", cfg.MaxExpires, store.cfg.TombstoneTTL)
	}
	if cfg.Socket == nil {
		cfg.Socket = newSocketNames(cfg.Now).name
	}
	return &Registrar{store: store, cfg: cfg}, nil
}

// badRequest is a reason to answer 400 (or another code) before any change.
type badRequest struct {
	code   int
	reason string
}

func (e *badRequest) Error() string { return strconv.Itoa(e.code) + " " + e.reason }

func bad(reason string) *badRequest { return &badRequest{code: 400, reason: reason} }

// Handle answers one REGISTER. It never panics on malformed input: a
// request it cannot understand gets 400 with the reason and changes nothing.
func (r *Registrar) Handle(req *sip.Request, tx sip.ServerTransaction) {
	res := r.process(req, tx)
	if res == nil {
		return
	}
	if err := tx.Respond(res); err != nil {
		r.cfg.Logger.Debug("usrloc: responding to REGISTER", "err", err)
	}
}

// process returns the response to send, or nil when the authenticator
// answered.
func (r *Registrar) process(req *sip.Request, tx sip.ServerTransaction) *sip.Response {
	if req.Method != sip.REGISTER {
		return sip.NewResponseFromRequest(req, 405, "Method Not Allowed", nil)
	}
	if req.SipVersion != "SIP/2.0" {
		return sip.NewResponseFromRequest(req, 505, "Version Not Supported", nil)
	}
	// RFC 3261 §8.2.2.3: refuse extensions the registrar does not know.
	if unsupported := unsupportedRequire(req); unsupported != "" {
		res := sip.NewResponseFromRequest(req, 420, "Bad Extension", nil)
		res.AppendHeader(sip.NewHeader("Unsupported", unsupported))
		return res
	}
	if req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil {
		return sip.NewResponseFromRequest(req, 400, "Missing Call-ID, CSeq, From or To", nil)
	}
	if req.CSeq().MethodName != sip.REGISTER {
		return sip.NewResponseFromRequest(req, 400, "CSeq Method Mismatch", nil)
	}
	// A Request-URI carries no headers (RFC 3261 §19.1.5; RFC 4475 3.1.2.7).
	if req.Recipient.Headers.Length() > 0 || req.Recipient.Host == "" {
		return sip.NewResponseFromRequest(req, 400, "Bad Request-URI", nil)
	}
	// A registrar understands no body (RFC 3261 §8.2.3; RFC 4475 3.1.2.16).
	if len(req.Body()) > 0 {
		return sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
	}
	if h := req.GetHeader("date"); h != nil {
		if _, err := time.Parse(http.TimeFormat, h.Value()); err != nil {
			return sip.NewResponseFromRequest(req, 400, "Bad Date", nil)
		}
	}
	aor, err := r.cfg.AOR(req)
	if err != nil {
		return sip.NewResponseFromRequest(req, 400, "Bad To URI", nil)
	}
	if r.cfg.Authenticate != nil && !r.cfg.Authenticate.Authenticate(req, tx, aor) {
		return nil
	}
	reg, fail := r.parse(req, tx, aor)
	if fail != nil {
		res := sip.NewResponseFromRequest(req, fail.code, fail.reason, nil)
		if fail.code == 423 {
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(r.cfg.MinExpires/time.Second))))
		}
		return res
	}
	var buf [2]Binding // most AORs hold one or two bindings: no slice on the heap
	bs := buf[:0]
	if reg.Contacts == nil && !reg.RemoveAll {
		bs = r.store.Lookup(aor, bs) // a fetch: no change
	} else if bs, err = r.store.Register(reg, bs); err != nil {
		switch {
		case errors.Is(err, ErrCSeqOrder):
			return sip.NewResponseFromRequest(req, 400, "CSeq Out Of Order", nil)
		case errors.Is(err, ErrTooManyContacts):
			return sip.NewResponseFromRequest(req, 403, "Too Many Contacts", nil)
		case errors.Is(err, ErrTooLarge):
			return sip.NewResponseFromRequest(req, 400, "Contact Too Large", nil)
		}
		r.cfg.Logger.Warn("usrloc: register failed", "aor", aor, "err", err)
		return sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil)
	}
	return r.ok(req, bs)
}

// ok is the 200 listing every current binding with its remaining expiry.
func (r *Registrar) ok(req *sip.Request, bs []Binding) *sip.Response {
	now := r.cfg.Now()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	var b strings.Builder
	for i := range bs {
		left := bs[i].Remaining(now)
		if left <= 0 {
			continue
		}
		b.Reset()
		b.WriteByte('<')
		b.WriteString(bs[i].Contact)
		b.WriteString(">;expires=")
		b.WriteString(strconv.Itoa(left))
		if q := bs[i].Q; q != 1000 {
			b.WriteString(";q=")
			b.WriteString(formatQ(q))
		}
		if bs[i].Instance != "" {
			b.WriteString(";+sip.instance=\"")
			b.WriteString(bs[i].Instance)
			b.WriteByte('"')
			if bs[i].RegID != 0 {
				b.WriteString(";reg-id=")
				b.WriteString(strconv.FormatUint(uint64(bs[i].RegID), 10))
			}
		}
		res.AppendHeader(sip.NewHeader("Contact", b.String()))
	}
	// RFC 3327 §5.3: the registrar echoes the Path it stored.
	for _, h := range req.GetHeaders("path") {
		res.AppendHeader(sip.NewHeader("Path", h.Value()))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(http.TimeFormat)))
	return res
}

// supported are the option tags the registrar implements.
var supported = map[string]bool{"path": true, "outbound": true}

// unsupportedRequire lists the Require option tags not in supported.
func unsupportedRequire(req *sip.Request) string {
	var out []string
	for _, h := range req.GetHeaders("require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			tag = strings.ToLower(strings.TrimSpace(tag))
			if tag != "" && !supported[tag] {
				out = append(out, tag)
			}
		}
	}
	return strings.Join(out, ", ")
}

// CanonicalAOR is the address of record of a URI: scheme, user and the
// lowercased host, without port, password or parameters (RFC 3261 §10.3
// step 5).
func CanonicalAOR(u *sip.Uri) (string, error) {
	if u == nil || u.Host == "" || u.Wildcard {
		return "", errors.New("no host")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = "sip"
	}
	if scheme != "sip" && scheme != "sips" {
		return "", errors.New("not a SIP URI")
	}
	var b strings.Builder
	b.Grow(len(scheme) + len(u.User) + len(u.Host) + 2)
	b.WriteString(scheme)
	b.WriteByte(':')
	if u.User != "" {
		b.WriteString(u.User)
		b.WriteByte('@')
	}
	b.WriteString(strings.ToLower(u.Host))
	return b.String(), nil
}

func formatQ(q uint16) string {
	if q >= 1000 {
		return "1"
	}
	s := strconv.Itoa(int(q) + 1000) // "1500" → "0.5"
	return strings.TrimRight("0."+s[1:], "0")
}

// parseQ parses a q-value ("0", "0.5", "1.000") into thousandths.
func parseQ(s string) (uint16, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole != "0" && whole != "1" || (dot && len(frac) > 3) {
		return 0, false
	}
	v := 0
	if whole == "1" {
		v = 1000
	}
	for i := 0; i < 3; i++ {
		d := 0
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, false
			}
			d = int(frac[i] - '0')
		}
		v += d * []int{100, 10, 1}[i]
	}
	if v > 1000 {
		return 0, false
	}
	return uint16(v), true
}
