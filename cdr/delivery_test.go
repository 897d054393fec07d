package cdr

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"
	"time"
)

func TestAuthFailureIsRetriedNotDropped(t *testing.T) {
	checkNoLeaks(t)
	s := newSink(t, ReceiverConfig{BearerToken: "right"}, false)
	cfg := fastConfig(t.TempDir(), s.srv.URL)
	cfg.Endpoints[0].BearerToken = "wrong"
	p := newPoster(t, cfg)
	post(t, p, "a", nil)
	waitFor(t, 5*time.Second, "failed attempts", func() bool { return p.Stats().Failures >= 2 })
	if s.count() != 0 || s.rcv.Stats().Rejected == 0 {
		t.Fatal("a wrong token must be refused by the receiver")
	}
	if st := p.Stats(); st.Delivered != 0 || st.SpoolBytes == 0 {
		t.Fatalf("record must stay spooled: %+v", st)
	}
}

func TestFailoverAndReturnToPreferred(t *testing.T) {
	checkNoLeaks(t)
	primary := newSink(t, ReceiverConfig{}, false)
	secondary := newSink(t, ReceiverConfig{}, false)
	primary.mode.Store(modeDown)
	cfg := fastConfig(t.TempDir(), primary.srv.URL, secondary.srv.URL)
	cfg.BreakerCooldown, cfg.BreakerMaxCooldown = 100*time.Millisecond, 100*time.Millisecond
	p := newPoster(t, cfg)
	for i := 0; i < 10; i++ {
		post(t, p, fmt.Sprintf("a%d", i), nil)
	}
	flush(t, p, 10*time.Second)
	if secondary.count() != 10 || primary.count() != 0 {
		t.Fatalf("primary %d, secondary %d", primary.count(), secondary.count())
	}
	st := p.Stats()
	if st.Failovers == 0 || st.Endpoints[0].State == BreakerClosed {
		t.Fatalf("want failovers and an open primary circuit: %+v", st)
	}

	primary.mode.Store(modeUp)
	// Once the cooldown passes a batch probes the primary and stays there.
	waitFor(t, 5*time.Second, "primary to take records again", func() bool {
		post(t, p, fmt.Sprintf("b%d", time.Now().UnixNano()), nil)
		flush(t, p, 5*time.Second)
		return primary.count() > 0
	})
	before := secondary.count()
	for i := 0; i < 10; i++ {
		post(t, p, fmt.Sprintf("c%d", i), nil)
	}
	flush(t, p, 5*time.Second)
	if secondary.count() != before {
		t.Fatalf("records kept going to the secondary after the primary recovered")
	}
	if p.Stats().Endpoints[0].State != BreakerClosed {
		t.Fatalf("primary circuit not closed: %+v", p.Stats().Endpoints[0])
	}
}

func TestRetriesOnSameEndpointBeforeFailover(t *testing.T) {
	checkNoLeaks(t)
	primary := newSink(t, ReceiverConfig{}, false)
	secondary := newSink(t, ReceiverConfig{}, false)
	primary.mode.Store(modeRefuse)
	cfg := fastConfig(t.TempDir(), primary.srv.URL, secondary.srv.URL)
	cfg.Retries, cfg.BreakerThreshold = 2, 10
	p := newPoster(t, cfg)
	post(t, p, "x", nil)
	flush(t, p, 10*time.Second)
	if got := primary.requests.Load(); got != 3 {
		t.Fatalf("primary saw %d attempts, want 1 + 2 retries", got)
	}
	if _, ok := secondary.record("x"); !ok {
		t.Fatal("record did not fail over")
	}
}

func TestAllDownThenRecoveryReplays(t *testing.T) {
	checkNoLeaks(t)
	a := newSink(t, ReceiverConfig{}, false)
	a.mode.Store(modeDown)
	cfg := fastConfig(t.TempDir(), deadURL(t), a.srv.URL)
	p := newPoster(t, cfg)
	for i := 0; i < 25; i++ {
		post(t, p, fmt.Sprint(i), nil)
	}
	waitFor(t, 5*time.Second, "both circuits to open", func() bool {
		st := p.Stats()
		return st.Endpoints[0].State != BreakerClosed && st.Endpoints[1].State != BreakerClosed
	})
	if a.count() != 0 || p.Stats().Delivered != 0 {
		t.Fatal("nothing can have been delivered")
	}
	a.mode.Store(modeUp)
	flush(t, p, 10*time.Second)
	if a.count() != 25 {
		t.Fatalf("replay delivered %d of 25", a.count())
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	checkNoLeaks(t)
	s := newSink(t, ReceiverConfig{}, true)
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())

	// Without the CA the certificate is not trusted and nothing is delivered.
	untrusted := newPoster(t, fastConfig(t.TempDir(), s.srv.URL))
	post(t, untrusted, "u", nil)
	waitFor(t, 5*time.Second, "a TLS failure", func() bool { return untrusted.Stats().Failures > 0 })
	if s.count() != 0 {
		t.Fatal("delivered over an untrusted certificate")
	}

	cfg := fastConfig(t.TempDir(), s.srv.URL)
	cfg.TLS = &tls.Config{RootCAs: pool}
	p := newPoster(t, cfg)
	post(t, p, "t", nil)
	flush(t, p, 10*time.Second)
	if _, ok := s.record("t"); !ok {
		t.Fatal("not delivered with the custom CA")
	}
}

func TestRefusedRecordMovesAsideNeverDropped(t *testing.T) {
	checkNoLeaks(t)
	a := newSink(t, ReceiverConfig{}, false)
	b := newSink(t, ReceiverConfig{}, false)
	a.mode.Store(modePoison)
	b.mode.Store(modePoison)
	cfg := fastConfig(t.TempDir(), a.srv.URL, b.srv.URL)
	cfg.Format, cfg.BatchSize, cfg.RejectRounds = FormatNDJSON, 20, 2
	p := newPoster(t, cfg)
	for i := 0; i < 5; i++ {
		post(t, p, fmt.Sprintf("g%d", i), nil)
	}
	post(t, p, "bad", map[string]any{"x": "poison"})
	for i := 5; i < 10; i++ {
		post(t, p, fmt.Sprintf("g%d", i), nil)
	}
	waitFor(t, 10*time.Second, "the records behind the refused one", func() bool { return a.count() == 10 })
	if _, ok := a.record("bad"); ok {
		t.Fatal("refused record delivered")
	}
	st := p.Stats()
	if st.Requeued == 0 || st.SpoolBytes == 0 || b.requests.Load() == 0 {
		t.Fatalf("want the refused record requeued and kept, both endpoints asked: %+v", st)
	}
	// The collector is fixed: the record that waited is delivered.
	a.mode.Store(modeUp)
	flush(t, p, 10*time.Second)
	if _, ok := a.record("bad"); !ok || p.Stats().Delivered != 11 {
		t.Fatalf("refused record not delivered after the fix: %+v", p.Stats())
	}
}
