package cdr

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Modes of a test collector.
const (
	modeUp      = iota // hand records to the Receiver
	modeDown           // 503 without looking at the body
	modeAckLost        // store the records, then answer 500 as if the reply was lost
	modeRefuse         // close the connection without an answer
	modePoison         // 400 for any request holding the word "poison"
)

// sink is a real HTTP collector on loopback built on Receiver, whose
// availability tests switch at run time.
type sink struct {
	t        *testing.T
	srv      *httptest.Server
	rcv      *Receiver
	mode     atomic.Int32
	requests atomic.Int64
	headers  chan http.Header // last request headers, if someone listens

	mu  sync.Mutex
	got map[string]Record
	n   map[string]int // callback count per ID (must stay 1)
}

func newSink(t *testing.T, cfg ReceiverConfig, tls bool) *sink {
	t.Helper()
	s := &sink{t: t, got: map[string]Record{}, n: map[string]int{}, headers: make(chan http.Header, 1)}
	rcv, err := NewReceiver(cfg, func(_ context.Context, rec Record) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.got[rec.ID] = rec
		s.n[rec.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.rcv = rcv
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		select {
		case s.headers <- r.Header.Clone():
		default:
		}
		switch s.mode.Load() {
		case modeDown:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case modeAckLost:
			rcv.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "lost", http.StatusInternalServerError)
		case modePoison:
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte("poison")) {
				http.Error(w, "malformed", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			rcv.ServeHTTP(w, r)
		case modeRefuse:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			http.Error(w, "refused", http.StatusBadGateway)
		default:
			rcv.ServeHTTP(w, r)
		}
	})
	if tls {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *sink) record(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.got[id]
	return r, ok
}

// checkNoLeaks fails the test if goroutines started during it outlive it.
// Register it first so it runs after every other cleanup.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// fastConfig returns a Config with quick retries for tests.
func fastConfig(dir string, urls ...string) Config {
	cfg := Config{SpoolDir: dir, Timeout: 2 * time.Second, BackoffBase: 5 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, BreakerCooldown: 50 * time.Millisecond,
		BreakerMaxCooldown: 200 * time.Millisecond, Seed: 1}
	for _, u := range urls {
		cfg.Endpoints = append(cfg.Endpoints, Endpoint{URL: u})
	}
	return cfg
}

func newPoster(t *testing.T, cfg Config) *Poster {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func flush(t *testing.T, p *Poster, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("flush: %v (stats %+v)", err, p.Stats())
	}
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
