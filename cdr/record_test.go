package cdr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// bareEncoder is a Poster with only what encode needs.
func bareEncoder(filter *Filter) *Poster {
	cfg := Config{Filter: filter, NewID: func() string { return "generated" }}.withDefaults()
	key, _ := json.Marshal(cfg.IDField)
	return &Poster{cfg: cfg, idKey: key}
}

// FuzzEncodeRecord feeds arbitrary bytes as a pre-encoded record, with an
// arbitrary ID: Post's encoder must either refuse them with ErrBadRecord or
// ErrBadID, or produce one compact JSON object whose leading ID field a Raw
// Receiver reads back as the same ID.
func FuzzEncodeRecord(f *testing.F) {
	f.Add([]byte(`{"a":1}`), "id-1", false)
	f.Add([]byte("{\n \"cdr_id\": \"x\", \"b\": [1, 2]\n}"), "", false)
	f.Add([]byte(`{"variables":{"secret":"pw"}}`), `quote"back\slash`, true)
	f.Add([]byte(`[]`), "", false)
	f.Add([]byte(`{"cdr\u005fid":"sneaky"}`), "mine", false)
	f.Fuzz(func(t *testing.T, raw []byte, id string, filter bool) {
		var flt *Filter
		if filter {
			flt = &Filter{Redact: []string{"variables.secret"}}
		}
		p := bareEncoder(flt)
		gotID, body, err := p.encode(Record{ID: id, JSON: raw})
		if err != nil {
			if !errors.Is(err, ErrBadRecord) && !errors.Is(err, ErrBadID) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if bytes.IndexByte(body, '\n') >= 0 {
			t.Fatalf("body spans lines: %q", body)
		}
		var obj map[string]any
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("body is not a JSON object: %v: %q", err, body)
		}
		if obj["cdr_id"] != gotID {
			t.Fatalf("ID field %v, returned ID %q", obj["cdr_id"], gotID)
		}
		rc, _ := NewReceiver(ReceiverConfig{Raw: true}, func(context.Context, Record) error { return nil })
		rec, err := rc.rawRecord(body, "")
		if err != nil || rec.ID != gotID {
			t.Fatalf("receiver read ID %q (%v), poster wrote %q", rec.ID, err, gotID)
		}
	})
}
