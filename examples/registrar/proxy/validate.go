package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/usrloc"
)

// validate checks what the proxy relies on before acting on a request (RFC
// 3261 §16.3 request validation) and returns the status and reason phrase to
// refuse it with, or 0 when it may proceed. sipgo's parser has already
// refused what it cannot read; this catches requests that parse but make no
// sense, so no handler dereferences a missing header.
func validate(req *sip.Request) (int, string) {
	if req.SipVersion != "SIP/2.0" {
		return 505, "Version Not Supported"
	}
	if req.Via() == nil {
		return 400, "Missing Via"
	}
	if req.CallID() == nil || *req.CallID() == "" {
		return 400, "Missing Call-ID"
	}
	from, to, cseq := req.From(), req.To(), req.CSeq()
	if from == nil || to == nil {
		return 400, "Missing From or To"
	}
	if cseq == nil {
		return 400, "Missing CSeq"
	}
	if cseq.MethodName != req.Method {
		return 400, "CSeq Method Mismatch"
	}
	if req.Method == sip.REGISTER {
		return 0, "" // the registrar checks the rest and answers in its own words
	}
	if tag, _ := from.Params.Get("tag"); tag == "" {
		return 400, "Missing From Tag"
	}
	scheme := strings.ToLower(req.Recipient.Scheme)
	if scheme != "sip" && scheme != "sips" {
		return 416, "Unsupported URI Scheme"
	}
	if req.Recipient.Host == "" {
		return 400, "Bad Request-URI"
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 && req.Method != sip.OPTIONS {
		return 483, "Too Many Hops"
	}
	if req.Method == sip.INVITE && !hasTag(to) {
		if _, err := usrloc.CanonicalAOR(&req.Recipient); err != nil {
			return 400, "Bad Request-URI"
		}
	}
	return 0, ""
}

// hasTag reports whether a To header carries a tag: the request is in a
// dialog.
func hasTag(to *sip.ToHeader) bool {
	if to == nil {
		return false
	}
	tag, _ := to.Params.Get("tag")
	return tag != ""
}

// domainAOR is the AOR of u's user in domain: what Config.Domain looks up.
func domainAOR(u *sip.Uri, domain string) (string, error) {
	d := *u
	d.Host, d.Port = domain, 0
	return usrloc.CanonicalAOR(&d)
}

// aorOf is the AOR a Request-URI is looked up under.
func (p *Proxy) aorOf(u *sip.Uri) (string, error) {
	if p.cfg.Domain != "" {
		return domainAOR(u, p.cfg.Domain)
	}
	return usrloc.CanonicalAOR(u)
}

// isSelf reports whether a URI names this proxy.
func (p *Proxy) isSelf(u *sip.Uri) bool {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return p.self[u.Host+":"+itoa(port)] || (strings.Contains(u.Host, ":") && p.self["["+u.Host+"]:"+itoa(port)])
}

func (c *Config) setDefaults() {
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.InviteTimeout == 0 {
		c.InviteTimeout = 3 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("%w: Listen %q: %v", ErrConfig, c.Listen, err)
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("%w: Advertise %q: %v", ErrConfig, c.Advertise, err)
		}
	}
	if c.RetryAfter < 0 || c.InviteTimeout < 0 || c.KeepaliveInterval < 0 || c.KeepaliveMaxFailures < 0 {
		return fmt.Errorf("%w: negative RetryAfter, InviteTimeout or keepalive setting", ErrConfig)
	}
	if c.Domain != "" {
		if _, err := domainAOR(&sip.Uri{Scheme: "sip", User: "u"}, c.Domain); err != nil {
			return fmt.Errorf("%w: Domain %q", ErrConfig, c.Domain)
		}
	}
	return nil
}

// Validate checks the parts of the configuration Start needs; each block
// validates its own.
func (c StackConfig) Validate() error {
	switch {
	case c.ID == "" || c.ClusterAddr == "" || c.DataDir == "":
		return fmt.Errorf("%w: ID, ClusterAddr and DataDir are required", ErrConfig)
	case c.CPS < 0 || c.ReadyWait < 0:
		return fmt.Errorf("%w: negative CPS or ReadyWait", ErrConfig)
	case c.VIP.Prefix.IsValid() && c.VIPBackend == nil:
		return fmt.Errorf("%w: a VIP needs a backend", ErrConfig)
	}
	return nil
}
