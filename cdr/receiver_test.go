package cdr

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func serve(rc *Receiver, ct, enc string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/cdr", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	rc.ServeHTTP(w, req)
	return w
}

func collect(t *testing.T, cfg ReceiverConfig) (*Receiver, *[]Record) {
	t.Helper()
	var got []Record
	rc, err := NewReceiver(cfg, func(_ context.Context, r Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rc, &got
}

func TestReceiverDeduplicatesWithinWindow(t *testing.T) {
	rc, got := collect(t, ReceiverConfig{DedupWindow: 2})
	nd := []byte("{\"cdr_id\":\"a\",\"x\":1}\n{\"cdr_id\":\"b\"}\n{\"cdr_id\":\"a\",\"x\":1}\n")
	if w := serve(rc, "application/x-ndjson", "", nd, nil); w.Code != http.StatusNoContent {
		t.Fatalf("code %d: %s", w.Code, w.Body)
	}
	if len(*got) != 2 || (*got)[0].ID != "a" || (*got)[1].ID != "b" {
		t.Fatalf("got %+v", *got)
	}
	if _, has := (*got)[0].Fields["cdr_id"]; has {
		t.Fatal("the ID field must be taken out of the fields")
	}
	serve(rc, "application/json", "", []byte(`{"cdr_id":"b"}`), nil)
	if len(*got) != 2 || rc.Stats().Duplicates != 2 {
		t.Fatalf("duplicate of b handed over: %+v", rc.Stats())
	}
	serve(rc, "application/json", "", []byte(`{"cdr_id":"c"}`), nil) // evicts a
	serve(rc, "application/json", "", []byte(`{"cdr_id":"a"}`), nil)
	if len(*got) != 4 {
		t.Fatalf("an ID older than the window must be handed over again: %d", len(*got))
	}
}

func TestReceiverIDFallbacks(t *testing.T) {
	rc, got := collect(t, ReceiverConfig{})
	serve(rc, "application/json", "", []byte(`{"x":1}`), map[string]string{"Idempotency-Key": "hdr"})
	// mod_json_cdr posts cdr=<json> with no ID at all: a digest of the body stands in.
	form := []byte("cdr=" + url.QueryEscape(`{"variables":{"uuid":"u1"}}`))
	serve(rc, "application/x-www-form-urlencoded", "", form, nil)
	serve(rc, "application/x-www-form-urlencoded", "", form, nil)
	if len(*got) != 2 || (*got)[0].ID != "hdr" || !strings.HasPrefix((*got)[1].ID, "sha256:") {
		t.Fatalf("got %+v", *got)
	}
}

func TestReceiverCallbackFailureIsRetriable(t *testing.T) {
	fail := true
	var got []string
	commits := 0
	rc, err := NewReceiver(ReceiverConfig{Commit: func(context.Context) error { commits++; return nil }},
		func(_ context.Context, r Record) error {
			if fail && r.ID == "b" {
				return errors.New("disk full")
			}
			got = append(got, r.ID)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	nd := []byte("{\"cdr_id\":\"a\"}\n{\"cdr_id\":\"b\"}\n")
	if w := serve(rc, "application/x-ndjson", "", nd, nil); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("code %d", w.Code)
	}
	fail = false
	if w := serve(rc, "application/x-ndjson", "", nd, nil); w.Code != http.StatusNoContent {
		t.Fatalf("code %d", w.Code)
	}
	// "a" was handed over before the failure but not committed, so it is
	// offered again: at least once, and the collector's own write is idempotent by ID.
	if strings.Join(got, ",") != "a,a,b" || commits != 1 {
		t.Fatalf("got %v, %d commits", got, commits)
	}
}

func TestReceiverRefusesBadRequests(t *testing.T) {
	rc, got := collect(t, ReceiverConfig{Username: "u", Password: "p", MaxBodyBytes: 1 << 10})
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write(bytes.Repeat([]byte(" "), 1<<20))
	_ = zw.Close()
	auth := map[string]string{"Authorization": "Basic dTpw"} // u:p
	for name, tc := range map[string]struct {
		ct, enc string
		body    []byte
		hdr     map[string]string
		code    int
	}{
		"no auth":     {"application/json", "", []byte(`{}`), nil, 401},
		"bad auth":    {"application/json", "", []byte(`{}`), map[string]string{"Authorization": "Basic dTp4"}, 401},
		"not json":    {"application/json", "", []byte(`{`), auth, 400},
		"array":       {"application/json", "", []byte(`[1]`), auth, 400},
		"trailing":    {"application/json", "", []byte(`{}{}`), auth, 400},
		"bad line":    {"application/x-ndjson", "", []byte("{}\nnope\n"), auth, 400},
		"empty batch": {"application/x-ndjson", "", []byte("\n"), auth, 400},
		"no cdr":      {"application/x-www-form-urlencoded", "", []byte("x=1"), auth, 400},
		"type":        {"text/plain", "", []byte(`{}`), auth, 400},
		"encoding":    {"application/json", "br", []byte(`{}`), auth, 400},
		"bad gzip":    {"application/json", "gzip", []byte(`{}`), auth, 400},
		"too big":     {"application/json", "", bytes.Repeat([]byte(" "), 2<<10), auth, 413},
		"gzip bomb":   {"application/json", "gzip", bomb.Bytes(), auth, 413},
	} {
		if w := serve(rc, tc.ct, tc.enc, tc.body, tc.hdr); w.Code != tc.code {
			t.Errorf("%s: code %d, want %d (%s)", name, w.Code, tc.code, strings.TrimSpace(w.Body.String()))
		}
	}
	if len(*got) != 0 {
		t.Fatalf("bad requests handed over %v", *got)
	}
	req := httptest.NewRequest(http.MethodGet, "/cdr", nil)
	w := httptest.NewRecorder()
	rc.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", w.Code)
	}
}

func FuzzReceiver(f *testing.F) {
	f.Add("application/x-ndjson", []byte("{\"cdr_id\":\"a\"}\n{\"b\":[1,{\"c\":null}]}\n"), false)
	f.Add("application/x-ndjson", []byte("{\"cdr_id\":\"a\",\"x\":1}\n{\"cdr_id\":\"a\\u0022\"}\n"), true)
	f.Add("application/json", []byte(`{"cdr_id":7}`), false)
	f.Add("application/x-www-form-urlencoded", []byte("cdr=%7B%7D"), true)
	f.Fuzz(func(t *testing.T, ct string, body []byte, raw bool) {
		rc, err := NewReceiver(ReceiverConfig{DedupWindow: 4, Raw: raw}, func(_ context.Context, r Record) error {
			if r.ID == "" || (r.Fields == nil) != raw || (r.JSON == nil) != !raw {
				t.Fatalf("handed over a record without ID or fields: %+v", r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if w := serve(rc, ct, "", body, nil); w.Code != 204 && w.Code != 400 && w.Code != 413 {
			t.Fatalf("code %d", w.Code)
		}
	})
}

func TestReceiverRawMode(t *testing.T) {
	rc, got := collect(t, ReceiverConfig{Raw: true})
	body := "{\"cdr_id\":\"fast\",\"n\":1}\n" + // the shape Poster writes
		"{\"n\":2,\"cdr_id\":\"later\"}\n" + // ID not first: decoded
		"{\"cdr_id\":\"esc\\\"aped\"}\n" + // escaped ID: decoded
		"{\"n\":4}\n" // no ID: digest
	if w := serve(rc, "application/x-ndjson", "", []byte(body), nil); w.Code != http.StatusNoContent {
		t.Fatalf("code %d: %s", w.Code, w.Body)
	}
	ids := []string{"fast", "later", `esc"aped`}
	for i, id := range ids {
		if (*got)[i].ID != id || (*got)[i].Fields != nil {
			t.Fatalf("record %d: %+v", i, (*got)[i])
		}
	}
	if !strings.HasPrefix((*got)[3].ID, "sha256:") || string((*got)[3].JSON) != `{"n":4}` {
		t.Fatalf("record 3: %+v", (*got)[3])
	}
	for _, bad := range []string{"{\"cdr_id\":\"x\"\n", "[1]\n", "{} x\n"} {
		if w := serve(rc, "application/x-ndjson", "", []byte(bad), nil); w.Code != http.StatusBadRequest {
			t.Errorf("%q: code %d", bad, w.Code)
		}
	}
}
