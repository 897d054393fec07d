package dialog

import (
	"errors"

	"github.com/emiago/sipgo/sip"
)

// Handler has the shape of a sipgo request handler (sipgo.RequestHandler).
type Handler = func(req *sip.Request, tx sip.ServerTransaction)

// LimitConfig configures Tracker.Limit.
type LimitConfig struct {
	// Profile is the profile counted, e.g. "calls-per-tenant".
	Profile string
	// Value picks the profile value of a call, e.g. its tenant; nil: the
	// From URI's host.
	Value func(req *sip.Request) string
	// Max is the most concurrent dialogs per value, cluster-wide.
	Max int
	// Code and Reason answer a refused INVITE; default 486 "Too Many
	// Calls" (a 503 would make the caller's proxy try another node).
	Code   int
	Reason string
}

// Limit returns sipgo middleware for INVITEs that tracks each initial
// INVITE's dialog, puts it in cfg.Profile under cfg.Value(req) and refuses
// it when that value already counts cfg.Max live dialogs across the
// cluster. Admitted INVITEs (and re-INVITEs) go to next, which forwards
// them and must feed the responses to Tracker.Response.
func (t *Tracker) Limit(cfg LimitConfig) func(next Handler) Handler {
	if cfg.Value == nil {
		cfg.Value = func(req *sip.Request) string { return req.From().Address.Host }
	}
	if cfg.Code == 0 {
		cfg.Code, cfg.Reason = 486, "Too Many Calls"
	}
	return func(next Handler) Handler {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			if !req.IsInvite() || toTag(req) != "" {
				next(req, tx)
				return
			}
			id, err := t.Invite(req)
			if err != nil {
				tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, err.Error(), nil))
				return
			}
			err = t.AddProfileLimit(id, cfg.Profile, cfg.Value(req), cfg.Max)
			switch {
			case errors.Is(err, ErrLimit):
				t.Reject(id, cfg.Code)
				tx.Respond(sip.NewResponseFromRequest(req, cfg.Code, cfg.Reason, nil))
				return
			case err != nil && !errors.Is(err, ErrEnded):
				tx.Respond(sip.NewResponseFromRequest(req, sip.StatusInternalServerError, err.Error(), nil))
				return
			}
			next(req, tx)
		}
	}
}
