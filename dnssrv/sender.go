package dnssrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// ErrAllTargetsFailed is returned by Sender.Do when every target failed.
var ErrAllTargetsFailed = errors.New("dnssrv: every target failed")

// SenderConfig configures a Sender; the zero value means defaults.
type SenderConfig struct {
	// Proxy, if set, is where every request goes: an outbound proxy or a
	// trunk given by name ("sip:trunk.example.net;transport=tcp"). Its
	// targets are tried in order while the Request-URI and Route headers
	// stay as they are. Nil: the top Route URI, else the Request-URI, is
	// resolved (RFC 3261 §8.1.2).
	Proxy *sip.Uri
	// AttemptTimeout bounds one attempt, so a target that never answers
	// costs this long rather than sipgo's Timer B/F (32s). Zero: no bound
	// beyond ctx and sipgo's timers.
	AttemptTimeout time.Duration
	// Deterministic orders targets by RequestKey(req) instead of at
	// random, as a stateless proxy must (RFC 3263 §4.4).
	Deterministic bool
	// Logger gets one debug line per failed attempt. Default: discard.
	Logger *slog.Logger
}

// Validate reports out-of-range fields.
func (c SenderConfig) Validate() error {
	if c.AttemptTimeout < 0 {
		return fmt.Errorf("%w: negative AttemptTimeout", ErrBadConfig)
	}
	if c.Proxy != nil && c.Proxy.Host == "" {
		return fmt.Errorf("%w: proxy URI without host", ErrBadConfig)
	}
	return nil
}

// Sender sends requests with a sipgo client, trying the resolved targets
// in order until one answers with something other than a 503 (RFC 3263
// §4.3). Each attempt is a new client transaction with a new Via branch.
// It is safe for concurrent use; it owns no goroutines.
type Sender struct {
	client *sipgo.Client
	r      *Resolver
	cfg    SenderConfig
}

// NewSender makes a Sender over client and r.
func NewSender(client *sipgo.Client, r *Resolver, cfg SenderConfig) (*Sender, error) {
	if client == nil || r == nil {
		return nil, fmt.Errorf("%w: nil client or resolver", ErrBadConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{client: client, r: r, cfg: cfg}, nil
}

// Do sends req and returns the first final response that does not call
// for failover. The request given is not modified; each attempt sends a
// copy with the target's transport and address. A request without a Via
// gets the missing headers once (the same Call-ID, From tag and CSeq on
// every attempt) and a fresh branch per attempt; a request that already
// has a Via (a proxy forwarding) gets a new top Via per attempt.
//
// When every target fails, Do returns ErrAllTargetsFailed together with
// the last 503, if there was one. Like sipgo's Client.Do, a canceled or
// timed-out INVITE attempt is not CANCELed.
func (s *Sender) Do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	it, err := s.iterate(ctx, req)
	if err != nil {
		return nil, err
	}
	base := req.Clone()
	forwarding := base.Via() != nil
	if !forwarding {
		if err := sipgo.ClientRequestBuild(s.client, base); err != nil {
			return nil, err
		}
	}
	var lastRes *sip.Response
	var lastErr error
	attempts := 0
	for t, ok := it.Next(); ok; t, ok = it.Next() {
		if t.Transport == SCTP || t.Transport == TLSSCTP {
			continue // sipgo has no SCTP transport
		}
		attempts++
		res, err := s.attempt(ctx, base, t, forwarding)
		if !ShouldFailover(res, err) {
			if err == nil {
				it.Succeeded()
			}
			return res, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.cfg.Logger.Debug("dnssrv: target failed, trying the next", "target", t.String(), "err", err,
			"status", statusOf(res))
		it.Failed(RetryAfter(res))
		if res != nil {
			lastRes = res
		}
		lastErr = err
	}
	if attempts == 0 {
		return nil, fmt.Errorf("%w: no target on a transport sipgo supports", ErrNoTargets)
	}
	if lastErr == nil {
		lastErr = errors.New("503 Service Unavailable")
	}
	return lastRes, fmt.Errorf("%w (%d tried): last: %w", ErrAllTargetsFailed, attempts, lastErr)
}

func statusOf(res *sip.Response) int {
	if res == nil {
		return 0
	}
	return int(res.StatusCode)
}

// iterate resolves the proxy, the top Route or the Request-URI.
func (s *Sender) iterate(ctx context.Context, req *sip.Request) (*Iterator, error) {
	u := s.cfg.Proxy
	if u == nil {
		u = &req.Recipient
		if r := req.Route(); r != nil {
			u = &r.Address
		}
	}
	if s.cfg.Deterministic {
		return s.r.IterateKey(ctx, u, RequestKey(req))
	}
	return s.r.Iterate(ctx, u)
}

func (s *Sender) attempt(ctx context.Context, base *sip.Request, t Target, forwarding bool) (*sip.Response, error) {
	a := base.Clone()
	a.SetTransport(t.Transport.String())
	a.SetDestination(t.AddrPort().String())
	if forwarding {
		if err := sipgo.ClientRequestAddVia(s.client, a); err != nil {
			return nil, err
		}
	} else if via := a.Via(); via != nil {
		via.Transport = t.Transport.String()
		via.Params.Add("branch", sip.GenerateBranchN(16))
	}
	if s.cfg.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.AttemptTimeout)
		defer cancel()
	}
	return s.client.Do(ctx, a)
}
