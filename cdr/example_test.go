package cdr_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/sipha/sipha/cdr"
)

// Post a FreeSWITCH-style CDR with the dialog's own ID, keeping three
// fields, renaming one and redacting another; a collector built on
// Receiver prints what it gets.
func ExamplePoster_Post() {
	// The collector's handler runs on its own goroutine, possibly before
	// Post returns; it hands the record over so the output keeps its order.
	got := make(chan cdr.Record, 1)
	rcv, _ := cdr.NewReceiver(cdr.ReceiverConfig{}, func(_ context.Context, rec cdr.Record) error {
		got <- rec
		return nil
	})
	collector := httptest.NewServer(rcv)
	defer collector.Close()

	dir, _ := os.MkdirTemp("", "cdr-example")
	defer os.RemoveAll(dir)
	p, err := cdr.New(cdr.Config{
		Endpoints: []cdr.Endpoint{{URL: collector.URL}},
		SpoolDir:  dir,
		Filter: &cdr.Filter{
			Keep:   []string{"variables.sip_call_id", "variables.billsec", "variables.sip_from_user"},
			Rename: map[string]string{"variables.sip_call_id": "call_id"},
			Redact: []string{"variables.sip_from_user"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	id, err := p.Post(context.Background(), cdr.Record{
		ID: "dialog-a84b4c76e66710",
		Fields: map[string]any{
			"core-uuid": "6b1d…",
			"variables": map[string]any{
				"sip_call_id":      "a84b4c76e66710@pc33.example.com",
				"billsec":          "42",
				"sip_from_user":    "alice",
				"rtp_audio_in_mos": "4.5",
			},
			"callflow": []any{"…"},
		},
	})
	fmt.Println("durable:", id, err)
	if err := p.Flush(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	rec := <-got
	fields, _ := json.Marshal(rec.Fields)
	fmt.Printf("collector got %s: %s\n", rec.ID, fields)
	// Output:
	// durable: dialog-a84b4c76e66710 <nil>
	// collector got dialog-a84b4c76e66710: {"call_id":"a84b4c76e66710@pc33.example.com","variables":{"billsec":"42","sip_from_user":"REDACTED"}}
}

// A Filter can be tried on its own.
func ExampleFilter_Apply() {
	f := &cdr.Filter{Drop: []string{"callflow", "variables.huge"}}
	out := f.Apply(map[string]any{"callflow": []any{1}, "variables": map[string]any{"huge": "…", "uuid": "u1"}})
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	// Output:
	// {"variables":{"uuid":"u1"}}
}

// A collector mounts a Receiver; here one NDJSON batch carries a record
// twice (a re-delivery after a lost answer) and the callback sees it once.
func ExampleNewReceiver() {
	rcv, _ := cdr.NewReceiver(cdr.ReceiverConfig{BearerToken: "s3cret"}, func(_ context.Context, rec cdr.Record) error {
		fmt.Println("store", rec.ID, rec.Fields["billsec"])
		return nil
	})
	body := `{"cdr_id":"call-1","billsec":42}` + "\n" + `{"cdr_id":"call-2","billsec":7}` + "\n" + `{"cdr_id":"call-1","billsec":42}` + "\n"
	req := httptest.NewRequest("POST", "/cdr", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer s3cret")
	w := httptest.NewRecorder()
	rcv.ServeHTTP(w, req)
	fmt.Println(w.Code, rcv.Stats().Duplicates, "duplicate")
	// Output:
	// store call-1 42
	// store call-2 7
	// 204 1 duplicate
}
