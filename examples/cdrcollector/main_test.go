package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipha/sipha/cdr"
)

func TestCollectorStoresEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "cdrs.ndjson")
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	var stderr strings.Builder
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-out", out, "-token", "tok"}, &stderr, func(a string) { addr <- a })
	}()
	url := "http://" + <-addr + "/cdr"

	p, err := cdr.New(cdr.Config{SpoolDir: filepath.Join(dir, "spool"), Format: cdr.FormatNDJSON, BatchSize: 10,
		Endpoints: []cdr.Endpoint{{URL: url, BearerToken: "tok"}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		// Post every record twice with the same ID: the collector keeps one.
		for range 2 {
			if _, err := p.Post(ctx, cdr.Record{ID: fmt.Sprintf("id%d", i), Fields: map[string]any{"n": i}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	if err := p.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(strings.TrimSuffix(url, "/cdr") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(metrics), "cdrcollector_records_stored_total 25\n") {
		t.Fatalf("metrics:\n%s", metrics)
	}
	_ = p.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		id := line["cdr_id"].(string)
		if seen[id] {
			t.Fatalf("%s stored twice", id)
		}
		seen[id] = true
		if fmt.Sprint(line["n"]) != strings.TrimPrefix(id, "id") {
			t.Fatalf("line %v", line)
		}
	}
	if len(seen) != 25 {
		t.Fatalf("%d records stored, want 25", len(seen))
	}
	if !strings.Contains(stderr.String(), "25 records stored, 25 duplicates dropped") {
		t.Fatalf("summary: %s", stderr.String())
	}
}

func TestCollectorFlags(t *testing.T) {
	var stderr strings.Builder
	if err := run(context.Background(), []string{"-h"}, &stderr, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(stderr.String(), "-listen") || !strings.Contains(stderr.String(), "de-duplicates") {
		t.Fatalf("help text: %s", stderr.String())
	}
	for _, args := range [][]string{{"-tls-cert", "x"}, {"extra"}, {"-dedup", "-1", "-out", filepath.Join(t.TempDir(), "o")}} {
		if err := run(context.Background(), args, &stderr, nil); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}
