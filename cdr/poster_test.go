package cdr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func post(t *testing.T, p *Poster, id string, fields map[string]any) string {
	t.Helper()
	got, err := p.Post(context.Background(), Record{ID: id, Fields: fields})
	if err != nil {
		t.Fatalf("post %q: %v", id, err)
	}
	return got
}

func TestFormatsAuthAndGzip(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*Config)
		rcv  ReceiverConfig
	}{
		{"json", func(*Config) {}, ReceiverConfig{}},
		{"form", func(c *Config) { c.Format = FormatForm }, ReceiverConfig{}},
		{"ndjson", func(c *Config) { c.Format, c.BatchSize, c.Linger = FormatNDJSON, 7, 5*time.Millisecond }, ReceiverConfig{}},
		{"ndjson-gzip-basic", func(c *Config) {
			c.Format, c.Gzip = FormatNDJSON, true
			c.Endpoints[0].Username, c.Endpoints[0].Password = "fs", "secret"
		}, ReceiverConfig{Username: "fs", Password: "secret"}},
		{"json-gzip-bearer", func(c *Config) {
			c.Gzip = true
			c.Endpoints[0].BearerToken = "tok"
		}, ReceiverConfig{BearerToken: "tok"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			s := newSink(t, tc.rcv, false)
			cfg := fastConfig(t.TempDir(), s.srv.URL)
			tc.cfg(&cfg)
			p := newPoster(t, cfg)
			var wg sync.WaitGroup
			for i := 0; i < 40; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					post(t, p, fmt.Sprintf("call-%02d", i), map[string]any{"n": json.Number(fmt.Sprint(i)), "caller": "alice"})
				}()
			}
			wg.Wait()
			flush(t, p, 10*time.Second)
			if s.count() != 40 {
				t.Fatalf("collector has %d records, want 40", s.count())
			}
			for i := 0; i < 40; i++ {
				rec, ok := s.record(fmt.Sprintf("call-%02d", i))
				if !ok || rec.Fields["n"] != json.Number(fmt.Sprint(i)) || rec.Fields["caller"] != "alice" || len(rec.Fields) != 2 {
					t.Fatalf("record %d arrived as %+v", i, rec)
				}
			}
			if st := p.Stats(); st.Delivered != 40 || st.Posted != 40 || st.Failures != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestRestartReplaysSpool(t *testing.T) {
	checkNoLeaks(t)
	s := newSink(t, ReceiverConfig{}, false)
	s.mode.Store(modeDown)
	dir := t.TempDir()
	p, err := New(fastConfig(dir, s.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		post(t, p, fmt.Sprint(i), map[string]any{"i": i})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Post(context.Background(), Record{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Post after Close: %v", err)
	}
	s.mode.Store(modeUp)
	p2 := newPoster(t, fastConfig(dir, s.srv.URL))
	flush(t, p2, 10*time.Second)
	if s.count() != 30 {
		t.Fatalf("after restart %d of 30 delivered", s.count())
	}
}

func TestIdempotencyHeaderAndGeneratedID(t *testing.T) {
	checkNoLeaks(t)
	s := newSink(t, ReceiverConfig{}, false)
	p := newPoster(t, fastConfig(t.TempDir(), s.srv.URL))
	id := post(t, p, "", map[string]any{"a": "b"})
	if len(id) != 32 {
		t.Fatalf("generated ID %q", id)
	}
	h := <-s.headers
	if h.Get("Idempotency-Key") != id {
		t.Fatalf("Idempotency-Key %q, want %q", h.Get("Idempotency-Key"), id)
	}
	flush(t, p, 5*time.Second)
	if _, ok := s.record(id); !ok {
		t.Fatal("record not found under its ID")
	}
	// An ID already in the fields is kept, so re-posting an NDJSON line is idempotent.
	if got := post(t, p, "", map[string]any{"cdr_id": "from-fields"}); got != "from-fields" {
		t.Fatalf("ID from fields: %q", got)
	}
}

func TestPostRejectsBadInput(t *testing.T) {
	checkNoLeaks(t)
	cfg := fastConfig(t.TempDir(), deadURL(t))
	cfg.MaxRecordBytes = 1 << 10
	p := newPoster(t, cfg)
	ctx := context.Background()
	for _, tc := range []struct {
		rec  Record
		want error
	}{
		{Record{ID: "a\nb"}, ErrBadID},
		{Record{ID: "   "}, ErrBadID},
		{Record{ID: string(make([]byte, 300))}, ErrBadID},
		{Record{Fields: map[string]any{"f": func() {}}}, ErrBadRecord},
		{Record{Fields: map[string]any{"big": string(make([]byte, 2<<10))}}, ErrTooLarge},
	} {
		if _, err := p.Post(ctx, tc.rec); !errors.Is(err, tc.want) {
			t.Errorf("Post(%.20q) = %v, want %v", tc.rec.ID, err, tc.want)
		}
	}
}

func TestFullSpoolPolicies(t *testing.T) {
	checkNoLeaks(t)
	s := newSink(t, ReceiverConfig{}, false)
	s.mode.Store(modeDown)
	cfg := fastConfig(t.TempDir(), s.srv.URL)
	cfg.SpoolMaxBytes, cfg.SegmentBytes = 8<<10, 2<<10
	pad := map[string]any{"pad": string(make([]byte, 200))}

	p := newPoster(t, cfg)
	var err error
	n := 0
	for ; err == nil && n < 1000; n++ {
		_, err = p.Post(context.Background(), Record{ID: fmt.Sprint(n), Fields: pad})
	}
	if !errors.Is(err, ErrSpoolFull) || p.Stats().Rejected != 1 {
		t.Fatalf("FullReject: after %d posts got %v", n, err)
	}
	accepted := n - 1
	_ = p.Close()

	cfg.WhenFull = FullBlock
	p = newPoster(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Post(ctx, Record{ID: "blocked", Fields: pad}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FullBlock: want the post to wait until ctx ends, got %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Post(context.Background(), Record{ID: "waiter", Fields: pad})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("blocked post returned early: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.mode.Store(modeUp)
	if err := <-done; err != nil {
		t.Fatalf("blocked post after space freed: %v", err)
	}
	flush(t, p, 10*time.Second)
	if s.count() != accepted+1 {
		t.Fatalf("delivered %d, want the %d accepted records plus the waiter", s.count(), accepted)
	}
	if _, ok := s.record("blocked"); ok {
		// The timed-out post may have been stored only if its write had begun;
		// with a full spool it never began.
		t.Fatal("a post that failed waiting for space was stored")
	}
}

func TestCloseIsIdempotentAndFlushSeesIt(t *testing.T) {
	checkNoLeaks(t)
	p, err := New(fastConfig(t.TempDir(), deadURL(t)))
	if err != nil {
		t.Fatal(err)
	}
	post(t, p, "x", nil)
	done := make(chan error, 1)
	go func() { done <- p.Flush(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush during Close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{SpoolDir: "/x", Endpoints: []Endpoint{{URL: "http://127.0.0.1:1/cdr"}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no dir":       func(c *Config) { c.SpoolDir = "" },
		"no endpoints": func(c *Config) { c.Endpoints = nil },
		"bad url":      func(c *Config) { c.Endpoints = []Endpoint{{URL: "ftp://x"}} },
		"two auths":    func(c *Config) { c.Endpoints[0].BearerToken, c.Endpoints[0].Username = "t", "u" },
		"json batch":   func(c *Config) { c.BatchSize = 5 },
		"format":       func(c *Config) { c.Format = 9 },
		"policy":       func(c *Config) { c.WhenFull = 9 },
		"negative":     func(c *Config) { c.Retries = -1 },
		"segments":     func(c *Config) { c.SpoolMaxBytes, c.SegmentBytes = 1<<20, 1<<19 },
		"backoff":      func(c *Config) { c.BackoffBase, c.BackoffMax = time.Second, time.Millisecond },
		"filter":       func(c *Config) { c.Filter = &Filter{Drop: []string{"a..b"}} },
	} {
		c := good
		c.Endpoints = append([]Endpoint(nil), good.Endpoints...)
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
}

func TestPostPreEncodedJSON(t *testing.T) {
	checkNoLeaks(t)
	s := newSink(t, ReceiverConfig{}, false)
	cfg := fastConfig(t.TempDir(), s.srv.URL)
	cfg.Format = FormatNDJSON
	p := newPoster(t, cfg)
	ctx := context.Background()
	// Pretty-printed: compacted so it stays on one NDJSON line.
	if _, err := p.Post(ctx, Record{ID: "pretty", JSON: []byte("{\n  \"a\": 1,\n  \"b\": \"x\"\n}")}); err != nil {
		t.Fatal(err)
	}
	// Carries its own ID field: decoded, and that ID is used.
	if id, err := p.Post(ctx, Record{JSON: []byte(`{"cdr_id":"own","a":2}`)}); err != nil || id != "own" {
		t.Fatalf("own ID: %q %v", id, err)
	}
	for _, bad := range []string{`[1]`, `{"a":`, `{} {}`, ``} {
		if _, err := p.Post(ctx, Record{ID: "bad", JSON: []byte(bad)}); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	flush(t, p, 10*time.Second)
	if r, _ := s.record("pretty"); fmt.Sprint(r.Fields["a"]) != "1" || r.Fields["b"] != "x" {
		t.Fatalf("pretty arrived as %v", r.Fields)
	}
	if r, _ := s.record("own"); len(r.Fields) != 1 || fmt.Sprint(r.Fields["a"]) != "2" {
		t.Fatalf("own arrived as %v", r.Fields)
	}
}

func TestOnePosterPerSpoolDir(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	cfg := fastConfig(dir, deadURL(t))
	p1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p2, err := New(cfg); err == nil {
		_ = p2.Close()
		t.Fatal("a second Poster opened a spool in use")
	}
	_ = p1.Close()
	p3, err := New(cfg)
	if err != nil {
		t.Fatalf("spool not released by Close: %v", err)
	}
	_ = p3.Close()
}
