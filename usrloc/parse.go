package usrloc

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// maxExpiresValue bounds an expires value as RFC 3261 allows (2^32-1).
const maxExpiresValue = 1<<32 - 1

// parseSeconds parses a delta-seconds value.
func parseSeconds(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxExpiresValue {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// contactHeaders returns every Contact of req, however sipgo parsed them.
func contactHeaders(req *sip.Request) ([]*sip.ContactHeader, *badRequest) {
	hs := req.GetHeaders("contact")
	out := make([]*sip.ContactHeader, 0, len(hs))
	for _, h := range hs {
		if c, ok := h.(*sip.ContactHeader); ok {
			out = append(out, c)
			continue
		}
		c := &sip.ContactHeader{}
		name, err := sip.ParseAddressValue(h.Value(), &c.Address, &c.Params)
		if err != nil {
			return nil, bad("Bad Contact")
		}
		c.DisplayName = name
		out = append(out, c)
	}
	return out, nil
}

// parse turns a REGISTER into a Registration, or says why it is refused.
// A Registration with nil Contacts and no RemoveAll is a fetch.
func (r *Registrar) parse(req *sip.Request, tx sip.ServerTransaction, aor string) (Registration, *badRequest) {
	reg := Registration{AOR: aor, CallID: req.CallID().Value()}
	cseq := req.CSeq().SeqNo
	if cseq > 1<<31 {
		return reg, bad("Bad CSeq")
	}
	reg.CSeq = cseq
	if reg.CallID == "" {
		return reg, bad("Empty Call-ID")
	}
	headerExp, hasHeaderExp := time.Duration(0), false
	if h := req.GetHeader("expires"); h != nil {
		d, ok := parseSeconds(h.Value())
		if !ok {
			return reg, bad("Bad Expires")
		}
		headerExp, hasHeaderExp = d, true
	}
	cs, fail := contactHeaders(req)
	if fail != nil {
		return reg, fail
	}
	if len(cs) == 0 {
		return reg, nil
	}
	for _, c := range cs {
		if c.Address.Wildcard {
			// RFC 3261 §10.3 step 6: "*" only alone and with Expires: 0.
			if len(cs) != 1 || !hasHeaderExp || headerExp != 0 {
				return reg, bad("Invalid Wildcard Contact")
			}
			if _, ok := c.Params.Get("expires"); ok {
				return reg, bad("Invalid Wildcard Contact")
			}
			reg.RemoveAll = true
			return reg, nil
		}
	}
	var paths []string
	for _, h := range req.GetHeaders("path") {
		paths = append(paths, strings.TrimSpace(h.Value()))
	}
	path := strings.Join(paths, ",")
	ua := ""
	if h := req.GetHeader("user-agent"); h != nil {
		ua = h.Value()
	}
	received := req.Source()
	socket := r.cfg.Socket(req, tx)
	reg.Contacts = make([]ContactUpdate, 0, len(cs))
	for _, c := range cs {
		scheme := strings.ToLower(c.Address.Scheme)
		if c.Address.Host == "" || scheme == "" || c.Address.Headers.Length() > 0 {
			return reg, bad("Bad Contact URI")
		}
		u := ContactUpdate{URI: c.Address.String(), Received: received, Socket: socket, Path: path, UserAgent: ua}
		exp := r.cfg.DefaultExpires
		if hasHeaderExp {
			exp = headerExp
		}
		if v, ok := c.Params.Get("expires"); ok {
			d, ok := parseSeconds(v)
			if !ok {
				return reg, bad("Bad Contact Expires")
			}
			exp = d
		}
		if exp > 0 && exp < r.cfg.MinExpires {
			return reg, &badRequest{code: 423, reason: "Interval Too Brief"}
		}
		u.Expires = min(exp, r.cfg.MaxExpires)
		// No q is the top priority (q=1.0), as registrars order it.
		u.Q = 1000
		if v, ok := c.Params.Get("q"); ok {
			q, ok := parseQ(v)
			if !ok {
				return reg, bad("Bad q Value")
			}
			u.Q = q
		}
		if v, ok := c.Params.Get("+sip.instance"); ok {
			u.Instance = strings.Trim(v, "\"")
			if u.Instance == "" {
				return reg, bad("Bad +sip.instance")
			}
		}
		if v, ok := c.Params.Get("reg-id"); ok {
			id, err := strconv.ParseUint(v, 10, 32)
			if err != nil || id == 0 || u.Instance == "" {
				return reg, bad("Bad reg-id")
			}
			u.RegID = uint32(id)
		}
		reg.Contacts = append(reg.Contacts, u)
	}
	return reg, nil
}
