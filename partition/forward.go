package partition

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// forward proxies req statefully to d's owner and relays the responses.
func (r *Router) forward(req *sip.Request, tx sip.ServerTransaction, d Decision) {
	fwd := req.Clone()
	fwd.SetDestination(d.Addr)
	opts := []sipgo.ClientRequestOption{sipgo.ClientRequestDecreaseMaxForward, sipgo.ClientRequestAddVia}
	if req.IsAck() {
		// An ACK to a 2xx is a request of its own with no transaction.
		if err := r.client.WriteRequest(fwd, opts...); err != nil {
			r.cfg.Logger.Debug("partition: forward ACK", "to", d.Owner, "err", err)
		}
		return
	}
	if req.Method != sip.REGISTER {
		// Stay on the path of the dialog, so in-dialog requests come back
		// through a node that routes them by the same key.
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
			return
		}
	}
}
