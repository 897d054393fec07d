package cdr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/cdr/internal/spool"
)

// Poster stores CDRs durably and delivers them in the background. Post is
// safe for concurrent use.
type Poster struct {
	cfg    Config
	log    *slog.Logger
	spool  *spool.Spool
	client *http.Client
	ownTr  *http.Transport // closed on Close when we built it
	eps    []*endpoint
	rng    *rand.Rand // used by the delivery goroutine only
	idKey  []byte     // IDField as a JSON string

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	posted, delivered, requests, failures, failovers, requeued atomic.Uint64
}

type endpoint struct {
	Endpoint
	timeout             time.Duration
	br                  breaker
	delivered, failures atomic.Uint64
}

// New opens (or creates) the spool in cfg.SpoolDir, replays whatever an
// earlier process left there, and starts delivering.
func New(cfg Config) (*Poster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sp, err := spool.Open(spool.Options{
		FS: cfg.fs, Dir: cfg.SpoolDir, SegmentBytes: cfg.SegmentBytes, MaxBytes: cfg.SpoolMaxBytes,
		// The entry header adds the ID and a timestamp to the body.
		MaxRecordBytes: cfg.MaxRecordBytes + maxIDLen + 32,
		Block:          cfg.WhenFull == FullBlock, NoSync: cfg.NoSync,
		CursorEvery: 100 * time.Millisecond, Now: cfg.Now, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("cdr: open spool: %w", err)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	idKey, _ := json.Marshal(cfg.IDField)
	p := &Poster{cfg: cfg, log: cfg.Logger, spool: sp, client: cfg.HTTPClient, idKey: idKey,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if p.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg.TLS
		tr.MaxIdleConnsPerHost = 4
		p.ownTr, p.client = tr, &http.Client{Transport: tr}
	}
	for _, e := range cfg.Endpoints {
		ep := &endpoint{Endpoint: e, timeout: e.Timeout,
			br: breaker{threshold: cfg.BreakerThreshold, base: cfg.BreakerCooldown, ceiling: cfg.BreakerMaxCooldown}}
		if ep.timeout == 0 {
			ep.timeout = cfg.Timeout
		}
		p.eps = append(p.eps, ep)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// Post stores rec durably and returns its ID. A nil error means the record
// is fsynced to the spool and will be delivered at least once, whatever
// happens to this process afterwards; concurrent Posts share one fsync.
//
// On error the record may or may not be stored (for example when ctx ends
// during the write); posting it again with the returned ID is safe, since
// receivers de-duplicate by ID. Errors wrap ErrSpoolFull, ErrTooLarge,
// ErrBadID, ErrBadRecord, ErrClosed or ctx's error.
func (p *Poster) Post(ctx context.Context, rec Record) (string, error) {
	if p.closed.Load() {
		return "", ErrClosed
	}
	id, body, err := p.encode(rec)
	if err != nil {
		return id, err
	}
	if len(body) > p.cfg.MaxRecordBytes {
		return id, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(body), p.cfg.MaxRecordBytes)
	}
	err = p.spool.Append(ctx, id, p.cfg.Now(), body)
	switch {
	case err == nil:
		p.posted.Add(1)
		return id, nil
	case errors.Is(err, spool.ErrFull):
		return id, fmt.Errorf("%w: %w", ErrSpoolFull, err)
	case errors.Is(err, spool.ErrClosed):
		return id, ErrClosed
	}
	return id, fmt.Errorf("cdr: post %s: %w", id, err)
}

// Flush waits until every stored record has been delivered, ctx ends, or
// the Poster is closed.
func (p *Poster) Flush(ctx context.Context) error {
	for {
		ch := p.spool.Changed()
		if p.spool.Empty() {
			return nil
		}
		if p.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops delivery (an attempt in flight is abandoned and its records
// stay spooled for the next start), closes the spool and waits for every
// goroutine. It is idempotent.
func (p *Poster) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		p.cancel()
		p.wg.Wait()
		p.closeErr = p.spool.Close()
		if p.ownTr != nil {
			p.ownTr.CloseIdleConnections()
		}
	})
	return p.closeErr
}

// EndpointStats describes one endpoint.
type EndpointStats struct {
	URL       string
	Delivered uint64 // records this endpoint acknowledged
	Failures  uint64 // failed attempts
	State     BreakerState
}

// Stats is a snapshot of a Poster's counters.
type Stats struct {
	Posted    uint64 // Posts that returned nil
	Delivered uint64 // records acknowledged with a 2xx
	Requests  uint64 // HTTP attempts
	Failures  uint64 // failed attempts
	Failovers uint64 // batches delivered by an endpoint other than the first
	// Requeued counts records every collector refused (400, 413, 415, 422)
	// RejectRounds rounds running, moved to the spool's tail to be retried
	// later instead of holding up the records behind them.
	Requeued uint64
	Rejected uint64 // Posts refused because the spool was full
	// SpoolBytes and SpoolSegments describe the spool on disk.
	SpoolBytes    int64
	SpoolSegments int
	// SkippedBytes counts damaged spool bytes skipped on replay.
	SkippedBytes uint64
	Endpoints    []EndpointStats
}

// Stats returns a snapshot of the counters.
func (p *Poster) Stats() Stats {
	ss := p.spool.Stats()
	st := Stats{Posted: p.posted.Load(), Delivered: p.delivered.Load(), Requests: p.requests.Load(),
		Failures: p.failures.Load(), Failovers: p.failovers.Load(), Requeued: p.requeued.Load(), Rejected: ss.Rejected,
		SpoolBytes: ss.Bytes, SpoolSegments: ss.Segments, SkippedBytes: ss.SkippedBytes}
	now := p.cfg.Now()
	for _, ep := range p.eps {
		st.Endpoints = append(st.Endpoints, EndpointStats{URL: ep.URL, Delivered: ep.delivered.Load(),
			Failures: ep.failures.Load(), State: ep.br.state(now)})
	}
	return st
}
