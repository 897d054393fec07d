package vip

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Check is a health check with keepalived vrrp_script semantics: it runs
// every Interval, a result is a failure when Run returns an error or does
// not return within Timeout, and the check changes state only after Rise
// successes or Fall failures in a row. A check starts healthy (keepalived's
// default; set InitFail to start failed, so a node takes no VIP before its
// service answered once).
type Check struct {
	// Name identifies the check in Stats and logs.
	Name string
	// Run probes the service, e.g. sends SIP OPTIONS to the local stack.
	// It is called from one goroutine per check, never concurrently with
	// itself, with a context that ends after Timeout.
	Run func(ctx context.Context) error
	// Interval between runs; default 1 s (keepalived's).
	Interval time.Duration
	// Timeout of one run; default Interval.
	Timeout time.Duration
	// Rise and Fall are the runs in a row that make a failed check healthy
	// and a healthy one failed; default 1 each (keepalived's).
	Rise, Fall int
	InitFail   bool
}

func (c Check) withDefaults() Check {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = c.Interval
	}
	if c.Rise == 0 {
		c.Rise = 1
	}
	if c.Fall == 0 {
		c.Fall = 1
	}
	return c
}

func (c Check) validate() error {
	switch {
	case c.Name == "" || c.Run == nil:
		return fmt.Errorf("%w: check %q needs Name and Run", ErrConfig, c.Name)
	case c.Interval < 0 || c.Timeout < 0 || c.Rise < 0 || c.Fall < 0:
		return fmt.Errorf("%w: check %q: negative Interval, Timeout, Rise or Fall", ErrConfig, c.Name)
	}
	return nil
}

// riseFall counts runs in a row. observe returns whether the state changed.
type riseFall struct {
	rise, fall int
	ok         bool
	run        int // results in a row that disagree with ok
}

func (s *riseFall) observe(pass bool) bool {
	if pass == s.ok {
		s.run = 0
		return false
	}
	s.run++
	need := s.fall
	if pass {
		need = s.rise
	}
	if s.run < need {
		return false
	}
	s.ok, s.run = pass, 0
	return true
}

// health combines the checks and the maintenance switch into one report to
// the ownership layer.
type health struct {
	hs  HealthSetter
	cfg *Config

	mu          sync.Mutex
	states      []riseFall
	maintenance bool
	reported    bool
}

func newHealth(hs HealthSetter, cfg Config, quit chan struct{}, wg *sync.WaitGroup) *health {
	h := &health{hs: hs, cfg: &cfg}
	for _, c := range cfg.Checks {
		h.states = append(h.states, riseFall{rise: c.Rise, fall: c.Fall, ok: !c.InitFail})
	}
	h.mu.Lock()
	h.reported = h.okLocked()
	h.mu.Unlock()
	hs.SetHealthy(h.reported)
	for i := range cfg.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.run(i, quit)
		}()
	}
	return h
}

func (h *health) run(i int, quit chan struct{}) {
	c := h.cfg.Checks[i]
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		err := runCheck(ctx, c.Run)
		cancel()
		h.mu.Lock()
		if h.states[i].observe(err == nil) {
			h.cfg.Logger.Warn("vip: health check changed", "check", c.Name, "ok", err == nil, "err", err)
		}
		h.reportLocked()
		h.mu.Unlock()
		select {
		case <-quit:
			return
		case <-t.C:
		}
	}
}

// runCheck turns a run that outlives its context into a failure even when
// Run ignores ctx; such a Run is left to finish on its own.
func runCheck(ctx context.Context, run func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *health) okLocked() bool {
	if h.maintenance {
		return false
	}
	for _, s := range h.states {
		if !s.ok {
			return false
		}
	}
	return true
}

// reportLocked tells the ownership layer on every change. The report is
// made under h.mu so two changes cannot reach it out of order.
func (h *health) reportLocked() {
	if ok := h.okLocked(); ok != h.reported {
		h.reported = ok
		h.hs.SetHealthy(ok)
	}
}

func (h *health) setMaintenance(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maintenance = on
	h.reportLocked()
}

func (h *health) healthy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reported
}

func (h *health) snapshot() (ok, maintenance bool, failing []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range h.states {
		if !s.ok {
			failing = append(failing, h.cfg.Checks[i].Name)
		}
	}
	slices.Sort(failing)
	return h.reported, h.maintenance, failing
}
