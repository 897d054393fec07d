package cdr

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// ReceiverConfig configures a Receiver. The zero value means defaults.
type ReceiverConfig struct {
	// IDField is the record field holding the ID; default "cdr_id".
	IDField string
	// IDHeader is the idempotency header, used as the ID of a single record
	// without IDField; default "Idempotency-Key". A record with neither gets
	// "sha256:" and the digest of its bytes, so identical re-posts of it (by
	// FreeSWITCH, say) still de-duplicate.
	IDHeader string
	// DedupWindow is how many recent IDs are remembered; default 100000.
	// A duplicate older than the window is handed over again.
	DedupWindow int
	// MaxBodyBytes bounds a request body after decompression; default 64 MiB.
	MaxBodyBytes int64
	// Username/Password or BearerToken, when set, are required of callers.
	Username, Password string
	BearerToken        string
	// Commit, if set, runs after the records of a request were handed to the
	// callback and before the 2xx: a collector fsyncs its file here. Only
	// after Commit succeeds are the IDs remembered as seen. Called under the
	// same lock as the callback.
	Commit func(ctx context.Context) error
	// Raw hands records over in Record.JSON, exactly as received (ID field
	// included), with Fields nil: for collectors that store JSON as it is.
	// It skips decoding into maps: the JSON is only validated, and the ID is
	// read from IDField when it is the object's first member, as Poster
	// writes it (otherwise the record is decoded to find it).
	Raw    bool
	Logger *slog.Logger
}

// Validate reports the first problem with cfg.
func (cfg ReceiverConfig) Validate() error {
	if cfg.DedupWindow < 0 || cfg.MaxBodyBytes < 0 {
		return fmt.Errorf("%w: negative DedupWindow or MaxBodyBytes", ErrConfig)
	}
	if cfg.BearerToken != "" && cfg.Username != "" {
		return fmt.Errorf("%w: both basic and bearer auth", ErrConfig)
	}
	return nil
}

// Receiver is an http.Handler for collectors: it accepts what a Poster
// sends (JSON, NDJSON, form cdr=, gzip), drops records whose ID it has
// seen recently, and hands the rest to a callback.
type Receiver struct {
	cfg ReceiverConfig
	fn  func(context.Context, Record) error
	log *slog.Logger

	mu   sync.Mutex // serialises callbacks and guards seen
	seen *window

	requests, accepted, duplicates, rejected atomic.Uint64
}

// NewReceiver returns a Receiver that calls fn once per new record. fn is
// never called concurrently; records of one request arrive in order. If fn
// fails the request is answered 503 and its records (from the failed one
// on) will be offered again when the sender retries.
func NewReceiver(cfg ReceiverConfig, fn func(ctx context.Context, rec Record) error) (*Receiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: nil callback", ErrConfig)
	}
	if cfg.IDField == "" {
		cfg.IDField = "cdr_id"
	}
	if cfg.IDHeader == "" {
		cfg.IDHeader = "Idempotency-Key"
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = 100000
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Receiver{cfg: cfg, fn: fn, log: cfg.Logger, seen: newWindow(cfg.DedupWindow)}, nil
}

// ReceiverStats is a snapshot of a Receiver's counters.
type ReceiverStats struct {
	Requests   uint64
	Accepted   uint64 // records handed to the callback and committed
	Duplicates uint64 // records dropped as already seen
	Rejected   uint64 // requests answered 4xx
}

// Stats returns a snapshot of the counters.
func (rc *Receiver) Stats() ReceiverStats {
	return ReceiverStats{Requests: rc.requests.Load(), Accepted: rc.accepted.Load(),
		Duplicates: rc.duplicates.Load(), Rejected: rc.rejected.Load()}
}

func (rc *Receiver) fail(w http.ResponseWriter, code int, msg string) {
	if code/100 == 4 {
		rc.rejected.Add(1)
	}
	rc.log.Warn("cdr: receiver refused a request", "code", code, "reason", msg)
	http.Error(w, msg, code)
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.requests.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.fail(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if !rc.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="cdr"`)
		rc.fail(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	recs, err := rc.decode(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rc.fail(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		rc.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := rc.handOver(r.Context(), recs); err != nil {
		rc.log.Error("cdr: receiver callback failed", "err", err)
		http.Error(w, "collector failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *Receiver) handOver(ctx context.Context, recs []Record) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var fresh []string
	inRequest := map[string]bool{}
	for _, rec := range recs {
		if rc.seen.has(rec.ID) || inRequest[rec.ID] {
			rc.duplicates.Add(1)
			continue
		}
		if err := rc.fn(ctx, rec); err != nil {
			return err
		}
		inRequest[rec.ID] = true
		fresh = append(fresh, rec.ID)
	}
	if rc.cfg.Commit != nil && len(fresh) > 0 {
		if err := rc.cfg.Commit(ctx); err != nil {
			return err
		}
	}
	for _, id := range fresh {
		rc.seen.add(id)
	}
	rc.accepted.Add(uint64(len(fresh)))
	return nil
}

func (rc *Receiver) authorized(r *http.Request) bool {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch {
	case rc.cfg.BearerToken != "":
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && eq(tok, rc.cfg.BearerToken)
	case rc.cfg.Username != "":
		u, pw, ok := r.BasicAuth()
		return ok && eq(u, rc.cfg.Username) && eq(pw, rc.cfg.Password)
	}
	return true
}

// decode reads the body in the format its Content-Type names.
func (rc *Receiver) decode(r *http.Request) ([]Record, error) {
	var body io.Reader = http.MaxBytesReader(nil, r.Body, rc.cfg.MaxBodyBytes)
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, fmt.Errorf("bad gzip body: %w", err)
		}
		defer zr.Close()
		body = &maxReader{r: zr, left: rc.cfg.MaxBodyBytes}
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	key := r.Header.Get(rc.cfg.IDHeader)
	switch ct {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, fmt.Errorf("bad form body: %w", err)
		}
		if !form.Has("cdr") {
			return nil, errors.New("form body without a cdr field")
		}
		rec, err := rc.record([]byte(form.Get("cdr")), key)
		return []Record{rec}, err
	case "application/x-ndjson", "application/jsonl", "application/json-seq":
		return rc.lines(data)
	case "", "application/json", "text/json":
		rec, err := rc.record(data, key)
		return []Record{rec}, err
	}
	return nil, fmt.Errorf("unsupported Content-Type %q", ct)
}

// lines decodes a stream of JSON objects, one per line by convention,
// with one decoder for the whole body.
func (rc *Receiver) lines(data []byte) ([]Record, error) {
	if rc.cfg.Raw {
		return rc.rawLines(data)
	}
	var recs []Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for n := 1; ; n++ {
		var fields map[string]any
		if err := dec.Decode(&fields); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("record %d: bad JSON: %w", n, err)
		}
		rec, err := rc.makeRecord(fields, "")
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, errors.New("empty batch")
	}
	return recs, nil
}

// record decodes one JSON object.
func (rc *Receiver) record(data []byte, key string) (Record, error) {
	if rc.cfg.Raw {
		return rc.rawRecord(data, key)
	}
	fields, err := rc.decodeFields(data)
	if err != nil {
		return Record{}, err
	}
	return rc.makeRecord(fields, key)
}

func (rc *Receiver) decodeFields(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return nil, fmt.Errorf("bad JSON record: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON record")
	}
	return fields, nil
}

// makeRecord takes the ID out of the fields, falling back to the
// idempotency key, then to a digest of the canonical encoding.
func (rc *Receiver) makeRecord(fields map[string]any, key string) (Record, error) {
	if fields == nil {
		return Record{}, errors.New("record is not a JSON object")
	}
	id, _ := fields[rc.cfg.IDField].(string)
	delete(fields, rc.cfg.IDField)
	switch {
	case id != "":
	case key != "":
		id = key
	default:
		// Marshal sorts keys, so equal records give equal digests.
		canon, err := json.Marshal(fields)
		if err != nil {
			return Record{}, err
		}
		sum := sha256.Sum256(canon)
		id = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return Record{ID: id, Fields: fields}, nil
}

// maxReader fails once more than left bytes were read, guarding against
// gzip bombs after MaxBytesReader has bounded the compressed size.
type maxReader struct {
	r    io.Reader
	left int64
}

func (m *maxReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.left -= int64(n)
	if m.left < 0 {
		return n, &http.MaxBytesError{}
	}
	return n, err
}

// window remembers the last n IDs seen, forgetting the oldest first. It is
// not safe for concurrent use; the Receiver guards it.
type window struct {
	ring []string
	next int
	full bool
	set  map[string]struct{}
}

func newWindow(n int) *window {
	return &window{ring: make([]string, n), set: make(map[string]struct{}, n)}
}

func (w *window) has(id string) bool {
	_, ok := w.set[id]
	return ok
}

func (w *window) add(id string) {
	if w.has(id) {
		return
	}
	if w.full {
		delete(w.set, w.ring[w.next])
	}
	w.ring[w.next] = id
	w.set[id] = struct{}{}
	w.next++
	if w.next == len(w.ring) {
		w.next, w.full = 0, true
	}
}
