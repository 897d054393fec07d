package cdr

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/sipha/sipha/cdr/internal/spool"
)

// maxRequestBytes bounds the bodies in one NDJSON batch.
const maxRequestBytes = 8 << 20

// outcome is how a deliver call ended.
type outcome int

const (
	sent     outcome = iota // an endpoint answered 2xx
	refused                 // every endpoint asked refused it as malformed, RejectRounds rounds running
	stopping                // the Poster is closing
)

// refusal reports an answer saying the request itself is bad, which no
// retry of the same bytes will change.
func refusal(err error) (int, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
			return se.Code, true
		}
	}
	return 0, false
}

// run is the delivery goroutine: it takes the oldest records from the
// spool, delivers them (retrying and failing over until one endpoint says
// 2xx), acknowledges them, and sleeps when the spool is empty. Records go
// out in spool order, one request at a time.
func (p *Poster) run() {
	defer p.wg.Done()
	lingered := false
	for {
		changed := p.spool.Changed()
		batch, err := p.spool.Peek(p.cfg.BatchSize, max(maxRequestBytes, p.cfg.MaxRecordBytes))
		if err != nil {
			p.log.Error("cdr: reading spool", "err", err)
			if !p.sleep(p.cfg.BackoffMax) {
				return
			}
			continue
		}
		if len(batch) == 0 {
			if err := p.spool.FlushCursor(); err != nil {
				p.log.Warn("cdr: saving spool cursor", "err", err)
			}
			select {
			case <-changed:
			case <-p.ctx.Done():
				return
			}
			continue
		}
		if len(batch) < p.cfg.BatchSize && p.cfg.Linger > 0 && !lingered {
			lingered = true
			if !p.sleep(p.cfg.Linger) {
				return
			}
			continue
		}
		lingered = false
		switch p.deliver(batch) {
		case stopping:
			return
		case sent:
			p.done(batch)
		case refused:
			if !p.isolate(batch) {
				return
			}
		}
	}
}

// done acknowledges delivered records.
func (p *Poster) done(batch []spool.Entry) {
	p.delivered.Add(uint64(len(batch)))
	if err := p.spool.Ack(batch[len(batch)-1].End); err != nil {
		// The records were delivered; at worst they are delivered again.
		p.log.Warn("cdr: acknowledging in spool", "err", err)
	}
}

// isolate handles a refused batch: it sends the records one by one, and
// moves each one still refused to the tail of the spool, so a record a
// collector cannot take stops holding up the ones behind it. It is tried
// again when the queue comes round to it; it is never dropped. isolate
// returns false when the Poster is closing.
func (p *Poster) isolate(batch []spool.Entry) bool {
	for i := range batch {
		one := batch[i : i+1]
		if len(batch) > 1 {
			switch p.deliver(one) {
			case stopping:
				return false
			case sent:
				p.done(one)
				continue
			}
		}
		if err := p.spool.Requeue(p.ctx, one[0].ID, one[0].Time, one[0].Body); err != nil {
			// Cannot move it (spool full): it stays at the head.
			p.log.Error("cdr: cannot move a refused record to the spool's tail", "id", one[0].ID, "err", err)
			return p.sleep(p.cfg.BackoffMax)
		}
		p.requeued.Add(1)
		p.log.Error("cdr: every collector refused a record; moved to the spool's tail", "id", one[0].ID)
		if err := p.spool.Ack(one[0].End); err != nil {
			p.log.Warn("cdr: acknowledging in spool", "err", err)
		}
	}
	return true
}

// deliver tries endpoints in order until one accepts the batch.
func (p *Poster) deliver(batch []spool.Entry) outcome {
	req, err := p.buildRequest(batch)
	for err != nil {
		p.log.Error("cdr: encoding request", "err", err)
		if !p.sleep(p.cfg.BackoffMax) {
			return stopping
		}
		req, err = p.buildRequest(batch)
	}
	refusedRounds := 0
	for round := 0; ; round++ {
		anyAllowed := false
		asked, refusals := 0, 0
		for i, ep := range p.eps {
			if !ep.br.allow(p.cfg.Now()) {
				continue
			}
			anyAllowed = true
			asked++
			for try := 0; try <= p.cfg.Retries; try++ {
				p.requests.Add(1)
				err := p.send(p.ctx, ep, req)
				if p.ctx.Err() != nil {
					return stopping
				}
				if err == nil {
					ep.br.success()
					ep.delivered.Add(uint64(len(batch)))
					if i > 0 {
						p.failovers.Add(1)
					}
					return sent
				}
				p.failures.Add(1)
				ep.failures.Add(1)
				if code, ok := refusal(err); ok {
					// The endpoint is up and answering; the same bytes will
					// not fare better on a retry here.
					refusals++
					p.log.Warn("cdr: collector refused the request", "url", ep.URL, "records", len(batch), "key", req.key, "status", code)
					break
				}
				ep.br.failure(p.cfg.Now())
				p.log.Warn("cdr: delivery failed", "url", ep.URL, "records", len(batch), "key", req.key, "try", try, "err", err)
				if try == p.cfg.Retries || !ep.br.allow(p.cfg.Now()) {
					break
				}
				if !p.sleep(p.backoff(try)) {
					return stopping
				}
			}
		}
		if asked > 0 && refusals == asked {
			if refusedRounds++; refusedRounds >= p.cfg.RejectRounds {
				return refused
			}
		} else {
			refusedRounds = 0
		}
		wait := p.backoff(round)
		if !anyAllowed || !p.anyAllowed() {
			// Every circuit is open: come back when the first may be probed.
			// The cooldowns themselves grow, so this is the backoff.
			wait = p.earliestProbe() + p.jitter(p.cfg.BackoffBase)
		}
		if !p.sleep(wait) {
			return stopping
		}
	}
}

func (p *Poster) anyAllowed() bool {
	for _, ep := range p.eps {
		if ep.br.allow(p.cfg.Now()) {
			return true
		}
	}
	return false
}

func (p *Poster) earliestProbe() time.Duration {
	var w time.Duration = -1
	for _, ep := range p.eps {
		if d := ep.br.wait(p.cfg.Now()); w < 0 || d < w {
			w = d
		}
	}
	return max(w, 0)
}

// backoff is the n-th exponential step with "equal jitter": between half
// and all of min(BackoffMax, BackoffBase·2ⁿ), so it never collapses to 0.
func (p *Poster) backoff(n int) time.Duration {
	d := p.cfg.BackoffMax
	if n < 30 {
		d = min(d, p.cfg.BackoffBase<<n)
	}
	return d/2 + p.jitter(d/2)
}

func (p *Poster) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(p.rng.Int64N(int64(d) + 1))
}

// sleep waits for d and reports false if the Poster is closing.
func (p *Poster) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// breaker is one endpoint's circuit. Closed: every batch may try it. After
// threshold consecutive failures it opens for a cooldown; when that has
// passed one probe is let through (half-open): success closes it, failure
// reopens it with a doubled cooldown. The mutex is for Stats; only the
// delivery goroutine changes state.
type breaker struct {
	threshold     int
	base, ceiling time.Duration

	mu       sync.Mutex
	fails    int
	open     bool
	until    time.Time
	cooldown time.Duration
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.open || !now.Before(b.until)
}

// wait is how long until allow turns true.
func (b *breaker) wait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return 0
	}
	return max(0, b.until.Sub(now))
}

func (b *breaker) success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails, b.open, b.cooldown = 0, false, 0
}

func (b *breaker) failure(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		b.cooldown = min(2*b.cooldown, b.ceiling)
		b.until = now.Add(b.cooldown)
		return
	}
	b.fails++
	if b.fails >= b.threshold {
		b.open, b.cooldown = true, b.base
		b.until = now.Add(b.cooldown)
	}
}

// BreakerState is the state of an endpoint's circuit.
type BreakerState string

// Circuit states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half-open"
)

func (b *breaker) state(now time.Time) BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return BreakerClosed
	case now.Before(b.until):
		return BreakerOpen
	}
	return BreakerHalfOpen
}
