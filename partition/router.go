package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// KeyFunc extracts the partition key of a request (tenant, domain, AOR).
// It returns an error wrapping [ErrBadKey] when the request has none.
// Concurrency: called from sipgo's handler goroutines, concurrently.
type KeyFunc func(req *sip.Request) (string, error)

// ToDomain is the KeyFunc of a farm partitioned by domain: the To URI's
// host, lower-cased.
func ToDomain(req *sip.Request) (string, error) {
	to := req.To()
	if to == nil || to.Address.Host == "" {
		return "", fmt.Errorf("%w: no To host", ErrBadKey)
	}
	return strings.ToLower(to.Address.Host), nil
}

// RouterConfig configures a [Router].
type RouterConfig struct {
	// Key extracts the key; default ToDomain.
	Key KeyFunc
	// Addr returns the host:port of a node's SIP proxy; required.
	// Concurrency: called from sipgo's handler goroutines.
	Addr func(cluster.NodeID) (string, bool)
	// IsSelf reports whether a Route or Request-URI addresses this node's
	// proxy (what it put in Record-Route, or its Contact); default: the
	// URI's host:port equals Addr(this node). Set it when the proxy's
	// Record-Route names another host (a hostname, a public address).
	// Concurrency: called from sipgo's handler goroutines.
	IsSelf func(sip.Uri) bool
	// Timeout bounds the wait for the owner's first response (provisional
	// or final) to a forwarded request; default 4s.
	Timeout time.Duration
	// Logger; default discards.
	Logger *slog.Logger
}

// Validate checks the config.
func (c RouterConfig) Validate() error {
	if c.Addr == nil {
		return fmt.Errorf("%w: RouterConfig.Addr is required", ErrBadConfig)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: negative Timeout", ErrBadConfig)
	}
	return nil
}

// Router routes requests of a partitioned farm: a request whose key this
// node holds goes to the local handler, any other goes to the key's
// committed owner. It follows only what the ownership layer committed:
// when the owner is unreachable it answers 503 rather than trying a
// standby on its own guess, and the next standby gets the key's requests
// once the leader has committed it as owner at a new epoch. So two nodes
// never serve one tenant.
//
// Requests inside a dialog (To tag) and requests with a route set are not
// routed by key: they follow their Route headers or dialog target (RFC 3261
// §16.12), so a BYE reaches the node that serves the call even after the
// key moved.
type Router struct {
	p      *Partitioner
	client *sipgo.Client
	cfg    RouterConfig
}

// NewRouter returns a router over p that forwards with client.
func NewRouter(p *Partitioner, client *sipgo.Client, cfg RouterConfig) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if p == nil || client == nil {
		return nil, fmt.Errorf("%w: nil partitioner or client", ErrBadConfig)
	}
	if cfg.Key == nil {
		cfg.Key = ToDomain
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 4 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Router{p: p, client: client, cfg: cfg}, nil
}

// Decision is where a request goes.
type Decision struct {
	// Key is the request's key; empty when Loose.
	Key string
	// Loose: routed by its Route set or dialog, not by key (Owner is this
	// node when Local, empty otherwise, and Epoch is zero).
	Loose bool
	// Local: this node holds the key at Epoch; serve it here.
	Local bool
	// Owner is the committed owner at Epoch, and Addr its SIP address
	// when it is another node.
	Owner cluster.NodeID
	Epoch ownership.Epoch
	Addr  string
}

// Decide tells where req goes; it does not change req. Errors: ErrBadKey
// (no key), ErrUnknownKey (not registered), ErrNoOwner (no owner
// committed), ErrNotHeld (committed here but the lease lapsed), ErrNoAddr,
// and for loose routing ErrBadRoute and ErrNotOnRoute.
func (r *Router) Decide(req *sip.Request) (Decision, error) {
	if d, ok, err := r.looseRoute(req); ok {
		return d, err
	}
	key, err := r.cfg.Key(req)
	if err != nil {
		return Decision{}, err
	}
	if _, err := r.p.checkKey(key); err != nil {
		return Decision{}, err
	}
	d := Decision{Key: key}
	if e, ok := r.p.Held(key); ok {
		d.Local, d.Owner, d.Epoch = true, r.p.LocalID(), e
		return d, nil
	}
	c, ok := r.p.Owner(key)
	switch {
	case !ok:
		return d, fmt.Errorf("%w: %q", ErrUnknownKey, key)
	case c.Node == "":
		return d, fmt.Errorf("%w: %q", ErrNoOwner, key)
	case c.Node == r.p.LocalID():
		return d, fmt.Errorf("%w: %q at epoch %d", ErrNotHeld, key, c.Epoch)
	}
	d.Owner, d.Epoch = c.Node, c.Epoch
	if d.Addr, ok = r.cfg.Addr(c.Node); !ok || d.Addr == "" {
		return d, fmt.Errorf("%w: %s", ErrNoAddr, c.Node)
	}
	return d, nil
}

// Middleware has sipgo's handler shape: requests this node holds go to
// next, the others are proxied to their owner (Via and Record-Route added
// by sipgo, Max-Forwards decremented), and those that cannot be routed get
// 400, 404, 483 or 503 with the reason.
func (r *Router) Middleware(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := r.Decide(req)
		if err == nil {
			// Decide has set this node's own Route entry aside; the next
			// hop and the local handler must not see it (§16.4).
			r.popSelfRoute(req)
		}
		switch {
		case err != nil:
			r.reject(req, tx, err)
		case d.Loose:
			if d.Local {
				next(req, tx)
			} else {
				r.forward(req, tx, d)
			}
		case d.Local:
			next(req, tx)
		case fromPeer(req):
			// A peer forwarded it here as to the owner, but this node's
			// view says another node: the views differ while a commit
			// propagates. Bouncing it on could loop; the sender retries.
			r.reject(req, tx, fmt.Errorf("%w: forwarded by a peer that sees another owner than %s", ErrNotHeld, d.Owner))
		default:
			r.forward(req, tx, d)
		}
	}
}

func (r *Router) reject(req *sip.Request, tx sip.ServerTransaction, err error) {
	r.cfg.Logger.Debug("partition: reject", "method", req.Method, "err", err)
	if req.IsAck() {
		return // an ACK gets no response
	}
	code, reason := 503, "Service Unavailable"
	switch {
	case errors.Is(err, ErrBadKey):
		code, reason = 400, "Bad Request (no partition key)"
	case errors.Is(err, ErrBadRoute):
		code, reason = 400, "Bad Request (unusable Route)"
	case errors.Is(err, ErrUnknownKey):
		code, reason = 404, "Not Found (unknown tenant)"
	case errors.Is(err, ErrNotOnRoute):
		code, reason = 403, "Forbidden (not on the dialog's route)"
	}
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if code == 503 {
		res.AppendHeader(sip.NewHeader("Retry-After", "1"))
	}
	if err := tx.Respond(res); err != nil {
		r.cfg.Logger.Debug("partition: respond", "err", err)
	}
}

// forward proxies req statefully to d's owner and relays the responses.
func (r *Router) forward(req *sip.Request, tx sip.ServerTransaction, d Decision) {
	fwd := req.Clone()
	fwd.SetDestination(d.Addr)
	opts := []sipgo.ClientRequestOption{sipgo.ClientRequestDecreaseMaxForward, sipgo.ClientRequestAddVia, markVia}
	if req.IsAck() {
		// An ACK to a 2xx is a request of its own with no transaction.
		if err := r.client.WriteRequest(fwd, opts...); err != nil {
			r.cfg.Logger.Debug("partition: forward ACK", "to", d.Owner, "err", err)
		}
		return
	}
	if req.Method != sip.REGISTER && !d.Loose {
		// Stay on the path of the dialog, so in-dialog requests come back
		// through this node, which forwards them along the same path.
		opts = append(opts, sipgo.ClientRequestAddRecordRoute)
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 1 {
		res := sip.NewResponseFromRequest(req, 483, "Too Many Hops", nil)
		_ = tx.Respond(res)
		return
	}
	// sipgo uses ctx only to get a connection to the owner.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	ctr, err := r.client.TransactionRequest(ctx, fwd, opts...)
	if err != nil {
		r.reject(req, tx, err)
		return
	}
	defer ctr.Terminate()
	var cancelled atomic.Bool
	if req.IsInvite() {
		tx.OnCancel(func(*sip.Request) {
			cancelled.Store(true)
			r.relayCancel(fwd)
		})
	}
	first := time.NewTimer(r.cfg.Timeout)
	defer first.Stop()
	answered := false
	for {
		select {
		case res, ok := <-ctr.Responses():
			if !ok {
				return
			}
			answered = true
			first.Stop()
			res = res.Clone()
			res.RemoveHeader("Via") // ours, the top one
			// Back to where the request came from (RFC 3581 symmetric
			// response), not to where this copy arrived from.
			res.SetDestination(req.Source())
			if err := tx.Respond(res); err != nil {
				r.cfg.Logger.Debug("partition: relay response", "err", err)
				return
			}
			if !res.IsProvisional() {
				return
			}
		case <-first.C:
			if !answered {
				r.cfg.Logger.Info("partition: owner did not answer", "key", d.Key, "owner", d.Owner, "epoch", d.Epoch)
				r.reject(req, tx, ErrNoAnswer)
				return
			}
		case <-ctr.Done():
			if !answered {
				r.reject(req, tx, fmt.Errorf("%w: %w", ErrNoAnswer, ctr.Err()))
			}
			return
		case <-tx.Done():
			if cancelled.Load() {
				// Let the INVITE client transaction take the owner's 487
				// and ACK it, so the owner stops retransmitting it.
				r.awaitFinal(ctr)
			}
			return
		}
	}
}

// viaMark is the Via parameter a router puts on the requests it forwards
// to a peer, so the peer forwards them no further.
const viaMark = "sipha-partition"

func markVia(_ *sipgo.Client, req *sip.Request) error {
	if v := req.Via(); v != nil {
		v.Params.Add(viaMark, "")
	}
	return nil
}

// fromPeer reports whether a router of the farm forwarded req.
func fromPeer(req *sip.Request) bool {
	v := req.Via()
	return v != nil && v.Params.Has(viaMark)
}

// relayCancel sends a CANCEL for the forwarded INVITE fwd to the owner
// (RFC 3261 §16.10): sipgo has already answered the caller's CANCEL and
// ended its INVITE with 487. It is a single write from sipgo's transaction
// goroutine, which must not block.
func (r *Router) relayCancel(fwd *sip.Request) {
	if fwd.Via() == nil || fwd.From() == nil || fwd.To() == nil || fwd.CallID() == nil || fwd.CSeq() == nil {
		return // sipgo does not build a transaction for such a request
	}
	c := sip.NewRequest(sip.CANCEL, fwd.Recipient)
	c.AppendHeader(fwd.Via().Clone()) // §9.1: only the top Via, same branch
	for _, h := range fwd.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.AppendHeader(sip.HeaderClone(fwd.From()))
	c.AppendHeader(sip.HeaderClone(fwd.To()))
	c.AppendHeader(sip.HeaderClone(fwd.CallID()))
	cseq := &sip.CSeqHeader{SeqNo: fwd.CSeq().SeqNo, MethodName: sip.CANCEL}
	c.AppendHeader(cseq)
	c.SetTransport(fwd.Transport())
	c.SetDestination(fwd.Destination())
	asIs := func(*sipgo.Client, *sip.Request) error { return nil }
	if err := r.client.WriteRequest(c, asIs); err != nil {
		r.cfg.Logger.Debug("partition: relay CANCEL", "err", err)
	}
}

// awaitFinal waits, at most Timeout, for ctr's final response.
func (r *Router) awaitFinal(ctr sip.ClientTransaction) {
	t := time.NewTimer(r.cfg.Timeout)
	defer t.Stop()
	for {
		select {
		case res, ok := <-ctr.Responses():
			if !ok || !res.IsProvisional() {
				return
			}
		case <-ctr.Done():
			return
		case <-t.C:
			return
		}
	}
}
