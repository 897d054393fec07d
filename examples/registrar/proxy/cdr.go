package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipha/sipha/cdr"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/dialog"
)

// CDRID is the CDR ID of a dialog: a digest of its Call-ID and the caller's
// From tag, the same on every node and for every firing of the terminate hook,
// so a collector de-duplicates a CDR that a failover posted twice. The callee's
// tag is left out on purpose: a node that took a dead node's dialog over may
// not have seen the 2xx, and the ID must not change with that.
func CDRID(id dialog.ID) string {
	sum := sha256.Sum256([]byte(id.String()))
	return "dlg-" + hex.EncodeToString(sum[:16])
}

// CDRFields is the CDR of an ended dialog.
func CDRFields(ev dialog.TerminateEvent) map[string]any {
	f := map[string]any{
		"call_id":       ev.ID.CallID,
		"from_tag":      ev.ID.FromTag,
		"to_tag":        ev.ToTag,
		"origin":        string(ev.Origin),
		"reason":        ev.Reason.String(),
		"hangup_by":     ev.HungUp.String(),
		"created":       ev.Created.UTC().Format(time.RFC3339Nano),
		"setup_ms":      ev.SetupTime().Milliseconds(),
		"billsec":       int64(ev.Duration().Round(time.Second) / time.Second),
		"duration_ms":   ev.Duration().Milliseconds(),
		"fired_by":      string(ev.FiredBy),
		"fired_epoch":   uint64(ev.FiredEpoch),
		"dialog_event":  ev.EventID,
		"response_code": ev.Code,
	}
	if !ev.Answered.IsZero() {
		f["answered"] = ev.Answered.UTC().Format(time.RFC3339Nano)
	}
	if !ev.Ended.IsZero() {
		f["ended"] = ev.Ended.UTC().Format(time.RFC3339Nano)
	}
	return f
}

// cdrQueue bounds the CDRs waiting for the spool. A full queue makes the
// terminate hook wait: a CDR is never dropped.
const cdrQueue = 4096

// CDRSink turns dialog terminate events into CDRs posted through a
// cdr.Poster. Its Hook is dialog.Config.OnTerminate: the hook must not
// block, and Post waits for an fsync, so the events go through a queue to
// one goroutine that posts them.
type CDRSink struct {
	poster *cdr.Poster
	node   cluster.NodeID
	log    *slog.Logger
	ch     chan dialog.TerminateEvent
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.RWMutex // guards closed against sends on ch
	closed bool

	posted, failed, discarded atomic.Uint64
}

// NewCDRSink starts a sink posting to poster; Close stops it. A nil poster
// (no collector configured) makes a sink that counts CDRs as discarded.
func NewCDRSink(poster *cdr.Poster, node cluster.NodeID, log *slog.Logger) *CDRSink {
	if log == nil {
		log = slog.Default()
	}
	s := &CDRSink{poster: poster, node: node, log: log, ch: make(chan dialog.TerminateEvent, cdrQueue)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s
}

// Hook queues the CDR of an ended dialog. Safe for concurrent use; it waits
// only when cdrQueue CDRs are already waiting. After Close it drops the
// event: the hook is at-least-once, and the node that takes this one's
// dialogs over fires it again.
func (s *CDRSink) Hook(ev dialog.TerminateEvent) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	if s.poster == nil {
		s.discarded.Add(1)
		return
	}
	select {
	case s.ch <- ev:
	case <-s.ctx.Done():
	}
}

func (s *CDRSink) run() {
	defer s.wg.Done()
	for {
		select {
		case ev := <-s.ch:
			s.post(ev)
		case <-s.ctx.Done():
			for { // what is queued still goes to the spool
				select {
				case ev := <-s.ch:
					s.post(ev)
				default:
					return
				}
			}
		}
	}
}

func (s *CDRSink) post(ev dialog.TerminateEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.poster.Post(ctx, cdr.Record{ID: CDRID(ev.ID), Fields: CDRFields(ev)}); err != nil {
		s.failed.Add(1)
		s.log.Error("proxy: CDR not spooled", "call_id", ev.ID.CallID, "err", err)
		return
	}
	s.posted.Add(1)
}

// CDRSinkStats counts the sink's work and its poster's.
type CDRSinkStats struct {
	// Discarded counts CDRs of a sink without a poster.
	Posted, Failed, Discarded uint64
	Queued                    int
	Poster                    cdr.Stats // zero without a poster
}

// Stats returns the counters.
func (s *CDRSink) Stats() CDRSinkStats {
	st := CDRSinkStats{Posted: s.posted.Load(), Failed: s.failed.Load(), Discarded: s.discarded.Load(), Queued: len(s.ch)}
	if s.poster != nil {
		st.Poster = s.poster.Stats()
	}
	return st
}

// Close posts what is queued, stops the goroutine and waits for it. The
// poster stays open. It is idempotent.
func (s *CDRSink) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
