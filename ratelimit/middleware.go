package ratelimit

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// PipeFunc picks the pipe of a request: a tenant, a trunk, a source IP.
// An empty name lets the request through unlimited.
//
// Concurrency: called from sipgo's handler goroutines, concurrently; it
// must not block. Return a string that already exists (a header field, a
// substring of one) to keep the hot path free of allocation.
type PipeFunc func(req *sip.Request) string

// MiddlewareConfig configures Middleware. Only Pipe is required.
type MiddlewareConfig struct {
	// Pipe picks the pipe of an initial request.
	Pipe PipeFunc
	// Methods are the initial-request methods limited; empty means every
	// method but ACK and CANCEL (which belong to a transaction already
	// admitted). For a CPS limit give INVITE.
	Methods []sip.RequestMethod
	// Status and Reason of the rejection; default 503 Service Unavailable.
	Status int
	Reason string
	// RetryAfter is the Retry-After sent with a rejection, rounded up to
	// whole seconds; default 1s; negative sends none.
	RetryAfter time.Duration
	// OnReject, when set, is called for each rejected request just before
	// its response is sent (for metrics and logs). Same concurrency as Pipe.
	OnReject func(req *sip.Request, pipe string)
}

// Validate checks the configuration: Pipe is required, and Status, when
// set, must be an error status (300–699).
func (c MiddlewareConfig) Validate() error {
	if c.Pipe == nil {
		return fmt.Errorf("%w: MiddlewareConfig.Pipe is required", ErrBadConfig)
	}
	if c.Status != 0 && (c.Status < 300 || c.Status > 699) {
		return fmt.Errorf("%w: rejection status %d is not an error status", ErrBadConfig, c.Status)
	}
	return nil
}

// Middleware wraps a sipgo request handler: an initial request (no To
// tag) whose pipe is over its limit is answered with Status and Retry-After
// and does not reach next; in-dialog requests (re-INVITE, BYE, in-dialog
// OPTIONS), ACK and CANCEL always go through.
//
//	limit, _ := ratelimit.Middleware(lim, ratelimit.MiddlewareConfig{Pipe: ratelimit.FromHost})
//	srv.OnInvite(limit(handleInvite))
func Middleware(l *Limiter, cfg MiddlewareConfig) (func(next sipgo.RequestHandler) sipgo.RequestHandler, error) {
	if l == nil {
		return nil, fmt.Errorf("%w: Middleware needs a Limiter", ErrBadConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Status == 0 {
		cfg.Status, cfg.Reason = 503, "Service Unavailable"
	}
	retry := ""
	switch {
	case cfg.RetryAfter == 0:
		retry = "1"
	case cfg.RetryAfter > 0:
		retry = strconv.FormatInt(int64((cfg.RetryAfter+time.Second-1)/time.Second), 10)
	}
	limited := func(m sip.RequestMethod) bool { return m != sip.ACK && m != sip.CANCEL }
	if len(cfg.Methods) > 0 {
		set := make(map[sip.RequestMethod]bool, len(cfg.Methods))
		for _, m := range cfg.Methods {
			set[m] = true
		}
		limited = func(m sip.RequestMethod) bool { return set[m] }
	}
	return func(next sipgo.RequestHandler) sipgo.RequestHandler {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			if !limited(req.Method) || inDialog(req) {
				next(req, tx)
				return
			}
			pipe := cfg.Pipe(req)
			if pipe == "" || l.Allow(pipe) {
				next(req, tx)
				return
			}
			if cfg.OnReject != nil {
				cfg.OnReject(req, pipe)
			}
			res := sip.NewResponseFromRequest(req, cfg.Status, cfg.Reason, nil)
			if retry != "" {
				res.AppendHeader(sip.NewHeader("Retry-After", retry))
			}
			if err := tx.Respond(res); err != nil && !errors.Is(err, net.ErrClosed) {
				l.cfg.Logger.Debug("ratelimit: rejection not sent", "pipe", pipe, "err", err)
			}
		}
	}, nil
}

// inDialog reports whether req belongs to an existing dialog (RFC 3261
// §12.2: a request within a dialog carries the remote tag in To).
func inDialog(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

// FromHost is a PipeFunc keyed by the From URI's host: the tenant's domain
// in a multi-tenant PBX.
func FromHost(req *sip.Request) string {
	if f := req.From(); f != nil {
		return f.Address.Host
	}
	return ""
}

// SourceIP is a PipeFunc keyed by the IP address the request came from.
func SourceIP(req *sip.Request) string {
	src := req.Source()
	if host, _, err := net.SplitHostPort(src); err == nil {
		return host
	}
	return src
}
