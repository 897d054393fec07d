package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sipha/sipha/cdr"
)

type collector struct {
	mu   sync.Mutex
	got  map[string]cdr.Record
	down atomic.Bool
	srv  *httptest.Server
}

func newCollector(t *testing.T) *collector {
	c := &collector{got: map[string]cdr.Record{}}
	rcv, err := cdr.NewReceiver(cdr.ReceiverConfig{}, func(_ context.Context, r cdr.Record) error {
		if c.down.Load() {
			return errors.New("down")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.got[r.ID] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.srv = httptest.NewServer(rcv)
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func ndjson(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"cdr_id":"call-%d","billsec":%d,"secret":"pw","variables":{"huge":"x"}}`+"\n", i, i)
	}
	return b.String()
}

func TestPostsStdinWithFailover(t *testing.T) {
	c := newCollector(t)
	dead := httptest.NewServer(nil)
	dead.Close()
	var stderr strings.Builder
	args := []string{"-url", dead.URL, "-url", c.srv.URL, "-spool", t.TempDir(), "-batch", "50",
		"-drop", "variables", "-redact", "secret", "-wait", "20s"}
	if err := run(context.Background(), args, strings.NewReader(ndjson(0, 500)), &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if c.len() != 500 {
		t.Fatalf("collector has %d of 500", c.len())
	}
	r := c.got["call-7"]
	if fmt.Sprint(r.Fields["billsec"]) != "7" || r.Fields["secret"] != "REDACTED" || r.Fields["variables"] != nil {
		t.Fatalf("record arrived as %v", r.Fields)
	}
	if !strings.Contains(stderr.String(), "500 posted, 500 delivered, none left") {
		t.Fatalf("summary: %s", stderr.String())
	}
}

func TestLeavesSpooledAndNextRunDelivers(t *testing.T) {
	c := newCollector(t)
	c.down.Store(true)
	spool := t.TempDir()
	var stderr strings.Builder
	args := []string{"-url", c.srv.URL, "-spool", spool, "-wait", "200ms"}
	if err := run(context.Background(), args, strings.NewReader(ndjson(0, 20)), &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "20 posted, 0 delivered, the rest stays in") {
		t.Fatalf("summary: %s", stderr.String())
	}
	c.down.Store(false)
	stderr.Reset()
	if err := run(context.Background(), []string{"-url", c.srv.URL, "-spool", spool}, strings.NewReader(""), &stderr); err != nil {
		t.Fatal(err)
	}
	if c.len() != 20 {
		t.Fatalf("second run delivered %d of 20: %s", c.len(), stderr.String())
	}
}

func TestBadInputAndFlags(t *testing.T) {
	c := newCollector(t)
	var stderr strings.Builder
	in := "{\"a\":1}\nnot json\n[1,2]\n\n{\"b\":2}\n"
	err := run(context.Background(), []string{"-url", c.srv.URL, "-spool", t.TempDir()}, strings.NewReader(in), &stderr)
	if err == nil || !strings.Contains(err.Error(), "2 bad lines") {
		t.Fatalf("want 2 bad lines, got %v", err)
	}
	if !strings.Contains(stderr.String(), "line 2:") || !strings.Contains(stderr.String(), "line 3:") || c.len() != 2 {
		t.Fatalf("stderr %s, %d delivered", stderr.String(), c.len())
	}
	for _, args := range [][]string{
		{"-spool", t.TempDir()},            // no URL
		{"-url", c.srv.URL},                // no spool
		{"-url", "ftp://x", "-spool", "d"}, // bad URL
		{"-url", c.srv.URL, "-spool", t.TempDir(), "-format", "xml"},
		{"-url", c.srv.URL, "-spool", t.TempDir(), "-ca", "/nonexistent"},
	} {
		if err := run(context.Background(), args, strings.NewReader(""), &stderr); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
	stderr.Reset()
	if err := run(context.Background(), []string{"-h"}, nil, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-spool") {
		t.Fatalf("-h: %v %s", err, stderr.String())
	}
}
