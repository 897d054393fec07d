package cdr

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/sipha/sipha/cdr/internal/vfs"
)

// Format is the wire format of a POST.
type Format int

const (
	// FormatJSON posts one record per request as a JSON object
	// (Content-Type: application/json). The default.
	FormatJSON Format = iota
	// FormatNDJSON posts up to BatchSize records per request, one JSON
	// object per line (Content-Type: application/x-ndjson).
	FormatNDJSON
	// FormatForm posts one record per request as the form field cdr=<json>
	// (application/x-www-form-urlencoded), which is what collectors written
	// for FreeSWITCH mod_json_cdr read.
	FormatForm
)

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatNDJSON:
		return "ndjson"
	case FormatForm:
		return "form"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses "json", "ndjson" or "form".
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatJSON, FormatNDJSON, FormatForm} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown format %q", ErrConfig, s)
}

// FullPolicy says what Post does when the spool holds SpoolMaxBytes.
// Neither policy ever drops a record silently.
type FullPolicy int

const (
	// FullReject makes Post fail at once with ErrSpoolFull; the caller still
	// holds the record. The default, so a stuck collector never stalls call
	// handling.
	FullReject FullPolicy = iota
	// FullBlock makes Post wait until delivery frees space or ctx ends.
	FullBlock
)

// Endpoint is one collector URL. Endpoints are tried in the order given.
type Endpoint struct {
	URL string
	// Timeout bounds one attempt against this endpoint; zero means
	// Config.Timeout.
	Timeout time.Duration
	// Username and Password set HTTP basic auth.
	Username, Password string
	// BearerToken sets "Authorization: Bearer <token>".
	BearerToken string
	// Header is added to every request.
	Header http.Header
}

// Config configures a Poster. The zero value of every field except
// Endpoints and SpoolDir means the documented default.
type Config struct {
	// Endpoints in failover order; the first healthy one receives records.
	Endpoints []Endpoint
	// SpoolDir is the directory of the durable spool. Required. One Poster
	// per directory.
	SpoolDir string

	Format Format
	// BatchSize is the most records per NDJSON request; default 256. Must be
	// 1 (or 0) for FormatJSON and FormatForm.
	BatchSize int
	// Linger is how long an NDJSON batch waits to fill up when fewer than
	// BatchSize records are pending; default 0 (send what there is).
	Linger time.Duration
	// Gzip compresses request bodies (Content-Encoding: gzip).
	Gzip bool
	// IDField is the JSON field that carries the record ID inside each
	// record; default "cdr_id". A record without Record.ID whose Fields hold
	// a string here keeps that ID.
	IDField string
	// IDHeader carries the idempotency key: the record ID, or for an NDJSON
	// batch a digest of its IDs. Default "Idempotency-Key".
	IDHeader string
	// Filter rewrites fields before a record is spooled; nil keeps all.
	Filter *Filter

	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// Retries is how many more times an endpoint is tried for one batch
	// before failing over to the next; default 0, as in mod_json_cdr.
	Retries int
	// RejectRounds is how many rounds running every endpoint asked must
	// refuse a request as malformed (400, 413, 415, 422) before its records
	// are sent one by one and each one still refused is moved to the tail of
	// the spool, to be retried when the queue comes round to it; default 3.
	// Records are never dropped; this only keeps one bad record from holding
	// up every record behind it.
	RejectRounds int
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between attempts and between rounds over all endpoints;
	// defaults 100ms and 30s.
	BackoffBase, BackoffMax time.Duration
	// BreakerThreshold consecutive failures open an endpoint's circuit;
	// default 3. An open circuit is skipped for BreakerCooldown (default 5s,
	// doubling on every failed probe up to BreakerMaxCooldown, default 2m),
	// then one batch probes it. Because every batch starts with the first
	// endpoint whose circuit allows it, delivery returns to the preferred
	// endpoint as soon as a probe succeeds.
	BreakerThreshold                    int
	BreakerCooldown, BreakerMaxCooldown time.Duration

	// SpoolMaxBytes bounds the spool on disk; default 1 GiB.
	SpoolMaxBytes int64
	// SegmentBytes is the size at which a new segment file starts; default
	// 8 MiB and at most SpoolMaxBytes/4.
	SegmentBytes int64
	// MaxRecordBytes bounds one encoded record; default 1 MiB.
	MaxRecordBytes int
	// WhenFull is the full-spool policy; default FullReject.
	WhenFull FullPolicy
	// NoSync turns fsync off. Records can then be lost in a power cut or
	// kernel crash; it exists to measure what durability costs.
	NoSync bool

	// TLS configures HTTPS (for example RootCAs from a custom CA); nil means
	// the system roots. Ignored when HTTPClient is set.
	TLS *tls.Config
	// HTTPClient replaces the client built from TLS. Its Timeout should be
	// zero: per-attempt timeouts come from Timeout.
	HTTPClient *http.Client

	Logger *slog.Logger
	// Now is the clock; default time.Now. Called from Post and from the
	// delivery goroutine, so it must be safe for concurrent use.
	Now func() time.Time
	// NewID generates IDs for records posted without one; default 128
	// random bits in hex. Called concurrently by concurrent Posts; it must
	// return IDs that are unique and valid in an HTTP header.
	NewID func() string
	// Seed seeds the backoff jitter; zero picks a random seed.
	Seed uint64

	fs vfs.FS // tests swap in a crash-simulating FS
}

// Validate reports the first problem with cfg.
func (cfg Config) Validate() error {
	if cfg.SpoolDir == "" {
		return fmt.Errorf("%w: SpoolDir is required", ErrConfig)
	}
	if len(cfg.Endpoints) == 0 {
		return fmt.Errorf("%w: at least one endpoint is required", ErrConfig)
	}
	for i, ep := range cfg.Endpoints {
		u, err := url.Parse(ep.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: endpoint %d: %q is not an http(s) URL", ErrConfig, i, ep.URL)
		}
		if ep.BearerToken != "" && ep.Username != "" {
			return fmt.Errorf("%w: endpoint %d: both basic and bearer auth", ErrConfig, i)
		}
		if ep.Timeout < 0 {
			return fmt.Errorf("%w: endpoint %d: negative timeout", ErrConfig, i)
		}
	}
	switch cfg.Format {
	case FormatJSON, FormatForm:
		if cfg.BatchSize > 1 {
			return fmt.Errorf("%w: BatchSize %d needs FormatNDJSON", ErrConfig, cfg.BatchSize)
		}
	case FormatNDJSON:
	default:
		return fmt.Errorf("%w: unknown format %d", ErrConfig, cfg.Format)
	}
	if cfg.WhenFull != FullReject && cfg.WhenFull != FullBlock {
		return fmt.Errorf("%w: unknown full policy %d", ErrConfig, cfg.WhenFull)
	}
	for _, v := range []struct {
		name string
		n    int64
	}{{"BatchSize", int64(cfg.BatchSize)}, {"Retries", int64(cfg.Retries)}, {"RejectRounds", int64(cfg.RejectRounds)}, {"BreakerThreshold", int64(cfg.BreakerThreshold)},
		{"SpoolMaxBytes", cfg.SpoolMaxBytes}, {"SegmentBytes", cfg.SegmentBytes}, {"MaxRecordBytes", int64(cfg.MaxRecordBytes)},
		{"Linger", int64(cfg.Linger)}, {"Timeout", int64(cfg.Timeout)}, {"BackoffBase", int64(cfg.BackoffBase)},
		{"BackoffMax", int64(cfg.BackoffMax)}, {"BreakerCooldown", int64(cfg.BreakerCooldown)}, {"BreakerMaxCooldown", int64(cfg.BreakerMaxCooldown)}} {
		if v.n < 0 {
			return fmt.Errorf("%w: negative %s", ErrConfig, v.name)
		}
	}
	d := cfg.withDefaults()
	if d.SegmentBytes > d.SpoolMaxBytes/4 {
		return fmt.Errorf("%w: SegmentBytes %d exceeds SpoolMaxBytes/4 (%d)", ErrConfig, d.SegmentBytes, d.SpoolMaxBytes/4)
	}
	if int64(d.MaxRecordBytes) > d.SegmentBytes {
		return fmt.Errorf("%w: MaxRecordBytes %d exceeds SegmentBytes %d", ErrConfig, d.MaxRecordBytes, d.SegmentBytes)
	}
	if d.BackoffBase > d.BackoffMax || d.BreakerCooldown > d.BreakerMaxCooldown {
		return fmt.Errorf("%w: a base duration exceeds its maximum", ErrConfig)
	}
	if err := d.Filter.validate(); err != nil {
		return err
	}
	return nil
}

func (cfg Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1
		if cfg.Format == FormatNDJSON {
			cfg.BatchSize = 256
		}
	}
	if cfg.IDField == "" {
		cfg.IDField = "cdr_id"
	}
	if cfg.IDHeader == "" {
		cfg.IDHeader = "Idempotency-Key"
	}
	def(&cfg.Timeout, 10*time.Second)
	def(&cfg.BackoffBase, 100*time.Millisecond)
	def(&cfg.BackoffMax, 30*time.Second)
	def(&cfg.BreakerCooldown, 5*time.Second)
	def(&cfg.BreakerMaxCooldown, 2*time.Minute)
	if cfg.RejectRounds == 0 {
		cfg.RejectRounds = 3
	}
	if cfg.BreakerThreshold == 0 {
		cfg.BreakerThreshold = 3
	}
	if cfg.SpoolMaxBytes == 0 {
		cfg.SpoolMaxBytes = 1 << 30
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = min(8<<20, cfg.SpoolMaxBytes/4)
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = int(min(1<<20, cfg.SegmentBytes))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewID == nil {
		cfg.NewID = randomID
	}
	if cfg.fs == nil {
		cfg.fs = vfs.OS{}
	}
	return cfg
}
