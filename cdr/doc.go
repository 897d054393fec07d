// Package cdr posts call detail records to HTTP collectors without ever
// losing one: the client side of high availability for billing data.
//
// It does what FreeSWITCH's mod_json_cdr / mod_xml_cdr do — POST each CDR to
// an ordered list of URLs, failing over from one to the next — and closes
// their gap: after the last URL fails, mod_json_cdr writes the CDR to an
// error directory and never posts it again. Here a record is first fsynced
// to a local spool, Post returns only then, and a background goroutine
// keeps delivering from the spool (across restarts, for as long as it
// takes) until a collector answers 2xx, as webhook senders like Stripe and
// Svix do.
//
// # Posting
//
//	p, err := cdr.New(cdr.Config{
//		Endpoints: []cdr.Endpoint{{URL: "https://cdr1.example/cdr"}, {URL: "https://cdr2.example/cdr"}},
//		SpoolDir:  "/var/spool/sipha-cdr",
//		Format:    cdr.FormatNDJSON,
//		Filter:    &cdr.Filter{Keep: []string{"variables.sip_call_id", "variables.billsec"}},
//	})
//	...
//	id, err := p.Post(ctx, cdr.Record{ID: dialogID, Fields: fields})
//
// Producers that already hold JSON set Record.JSON instead of Fields. A nil
// error from Post means the record is durable. Many concurrent Posts
// share one fsync (group commit), so throughput grows with concurrency.
//
// # Delivery
//
// Records leave the spool in order, one request at a time: one record per
// request for FormatJSON and FormatForm (the "cdr=" form mod_json_cdr
// collectors expect), up to BatchSize for FormatNDJSON. Each batch goes to
// the first endpoint whose circuit breaker allows it, is retried there
// Retries times with exponential backoff and jitter, then fails over to the
// next endpoint; when all fail the round repeats after a backoff, forever.
// Since every batch starts again at the first endpoint whose breaker allows
// it, delivery returns to the preferred endpoint as soon as a probe
// succeeds, and a spool that filled during an outage drains at once.
//
// Delivery is at least once. Every record carries a stable ID — the
// caller's (a dialog's terminate hook passes its own) or one Post
// generates — stored in the spool, put in the record under IDField and
// sent in the IDHeader header (a batch sends a digest of its IDs there).
// A crash between a collector's 2xx and the spool's acknowledgement re-sends
// the record with the same ID; Receiver de-duplicates it.
//
// # The spool
//
// The spool is a directory of append-only segment files of frames
// (length, CRC32C, payload). A torn write at a segment's end, or a damaged
// frame anywhere, is skipped by scanning for the next good frame, so it
// never hides the records after it. Segments are deleted once every record
// in them is acknowledged; a small cursor file remembers the position in
// the oldest segment (losing it only re-delivers). The spool is bounded by
// SpoolMaxBytes: when full, Post fails with ErrSpoolFull (FullReject, the
// default) or waits for space (FullBlock) — records are never dropped.
//
// # Receiving
//
// NewReceiver returns an http.Handler for collectors that accepts every
// format above (and gzip), checks basic or bearer auth, drops records whose
// ID was seen within a bounded window and hands the rest to a callback,
// decoded into Fields or, in Raw mode, as the JSON bytes received.
// examples/cdrcollector is a collector built on it; examples/cdrpost posts
// NDJSON from stdin.
package cdr
