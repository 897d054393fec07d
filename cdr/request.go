package cdr

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sipha/sipha/cdr/internal/spool"
)

// StatusError reports a non-2xx answer from an endpoint.
type StatusError struct {
	URL  string
	Code int
}

func (e *StatusError) Error() string { return fmt.Sprintf("cdr: %s answered %d", e.URL, e.Code) }

// request is one encoded POST, built once per batch and reused across
// attempts and endpoints so every retry carries the same bytes and key.
type request struct {
	body        []byte
	contentType string
	key         string
	count       int
}

func (p *Poster) buildRequest(batch []spool.Entry) (request, error) {
	r := request{key: batch[0].ID, count: len(batch)}
	switch p.cfg.Format {
	case FormatJSON:
		r.body, r.contentType = batch[0].Body, "application/json"
	case FormatForm:
		r.body = []byte("cdr=" + url.QueryEscape(string(batch[0].Body)))
		r.contentType = "application/x-www-form-urlencoded"
	case FormatNDJSON:
		var b bytes.Buffer
		h := sha256.New()
		for _, e := range batch {
			b.Write(e.Body)
			b.WriteByte('\n')
			io.WriteString(h, e.ID)
			h.Write([]byte{0})
		}
		r.body, r.contentType = b.Bytes(), "application/x-ndjson"
		if len(batch) > 1 {
			// A stable key for the whole batch; receivers de-duplicate the
			// records inside it by their own IDs.
			r.key = "batch-" + hex.EncodeToString(h.Sum(nil)[:16])
		}
	}
	if p.cfg.Gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(r.body); err != nil {
			return r, err
		}
		if err := zw.Close(); err != nil {
			return r, err
		}
		r.body = b.Bytes()
	}
	return r, nil
}

func (p *Poster) send(ctx context.Context, ep *endpoint, r request) error {
	ctx, cancel := context.WithTimeout(ctx, ep.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	for k, vs := range ep.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Content-Type", r.contentType)
	req.Header.Set(p.cfg.IDHeader, r.key)
	req.Header.Set("X-CDR-Count", strconv.Itoa(r.count))
	if p.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	switch {
	case ep.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+ep.BearerToken)
	case ep.Username != "":
		req.SetBasicAuth(ep.Username, ep.Password)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return &StatusError{URL: ep.URL, Code: resp.StatusCode}
	}
	return nil
}
