package usrloc

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// DigestAuth is an Authenticator doing HTTP digest (RFC 3261 §22, MD5,
// qop=auth) with the digest helpers sipgo itself uses. Nonces are
// stateless: a timestamp signed with Secret, valid for NonceTTL, so any
// node of the cluster sharing Secret accepts a nonce another issued.
// Nonce counts are not tracked: a replay within NonceTTL is accepted.
type DigestAuth struct {
	Realm string
	// Secret signs nonces; at least 16 bytes, the same on every node.
	Secret []byte
	// Password returns the password of a user (the user part of the AOR
	// must equal the digest username); ok false for an unknown user.
	Password func(username string) (password string, ok bool)
	// NonceTTL bounds a nonce's age; default 5 min.
	NonceTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ErrBadNonce is a nonce this realm did not issue or that has expired.
var ErrBadNonce = errors.New("usrloc: bad or stale nonce")

// Authenticate implements Authenticator.
func (d *DigestAuth) Authenticate(req *sip.Request, tx sip.ServerTransaction, aor string) bool {
	h := req.GetHeader("authorization")
	if h == nil {
		d.challenge(req, tx, false)
		return false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Realm != d.Realm {
		d.challenge(req, tx, false)
		return false
	}
	if err := d.checkNonce(cred.Nonce); err != nil {
		d.challenge(req, tx, true)
		return false
	}
	user := ""
	if to := req.To(); to != nil {
		user = to.Address.User
	}
	pw, ok := d.Password(cred.Username)
	if !ok || cred.Username != user {
		tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return false
	}
	chal := &digest.Challenge{Realm: d.Realm, Nonce: cred.Nonce, Opaque: cred.Opaque, Algorithm: cred.Algorithm}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: cred.URI, Username: cred.Username,
		Password: pw, Count: cred.Nc, Cnonce: cred.Cnonce})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return false
	}
	return true
}

func (d *DigestAuth) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *DigestAuth) challenge(req *sip.Request, tx sip.ServerTransaction, stale bool) {
	chal := digest.Challenge{Realm: d.Realm, Nonce: d.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
	res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", chal.String()))
	tx.Respond(res)
}

// nonce is base64(unix-ns ‖ HMAC-SHA256(secret, unix-ns)[:16]).
func (d *DigestAuth) nonce() string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(d.now().UnixNano()))
	m := hmac.New(sha256.New, d.Secret)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (d *DigestAuth) checkNonce(n string) error {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 {
		return ErrBadNonce
	}
	m := hmac.New(sha256.New, d.Secret)
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil)[:16], b[8:]) {
		return ErrBadNonce
	}
	ttl := d.NonceTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	age := d.now().Sub(time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))))
	if age < 0 || age > ttl {
		return ErrBadNonce
	}
	return nil
}
