package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Sentinel errors of the ratelimit package; returned errors wrap them.
var (
	ErrBadConfig   = errors.New("ratelimit: bad config")
	ErrClosed      = errors.New("ratelimit: limiter closed")
	ErrLimited     = errors.New("ratelimit: over the limit")
	ErrPipeRefused = errors.New("ratelimit: pipe refused (MaxPipes reached, or an empty or too long name)")
	ErrNoReserve   = errors.New("ratelimit: pipe's algorithm cannot reserve (only TokenBucket can)")
	ErrBadMessage  = errors.New("ratelimit: malformed demand message")
)

// Algorithm is how one pipe decides.
type Algorithm uint8

const (
	// TokenBucket (the default) admits Rate per second on average with bursts
	// of up to Burst. It runs on one atomic word per pipe (GCRA form), so
	// it takes no lock and supports Reserve.
	TokenBucket Algorithm = iota
	// SlidingWindow admits at most Rate × Window in any window, estimated
	// from the current and previous fixed windows (the previous one weighted
	// by how much of it still overlaps).
	SlidingWindow
	// FixedWindow is OpenSIPS' TAILDROP: at most Rate × Window per aligned
	// window, then everything is dropped until the next window starts.
	FixedWindow
	// RED is the token bucket with random early drop: once more than half
	// of the burst is in use, a call is refused with a probability that
	// grows linearly to 1 as the bucket empties, so a burst meets a rising
	// rejection rate instead of all-then-nothing. The long-run rate is the
	// bucket's. Supports Reserve (reservations are not dropped early).
	RED
)

func (a Algorithm) String() string {
	switch a {
	case TokenBucket:
		return "token-bucket"
	case SlidingWindow:
		return "sliding-window"
	case FixedWindow:
		return "fixed-window"
	case RED:
		return "red"
	}
	return fmt.Sprintf("algorithm(%d)", uint8(a))
}

// Limit is the cluster-wide limit of one pipe.
type Limit struct {
	// Rate is the admitted rate per second (calls per second). Zero with
	// Burst zero means the pipe is not limited.
	Rate float64
	// Burst is how many calls TokenBucket admits at once after the pipe was
	// idle. Zero means Rate × Config.Interval, at least 1. In cluster mode each node's
	// bucket holds its share of Burst, at least 1.
	Burst int
	// Algorithm picks the decision rule; default TokenBucket.
	Algorithm Algorithm
	// Window is the window of SlidingWindow and FixedWindow; default 1s.
	Window time.Duration
}

func (l Limit) unlimited() bool { return l.Rate == 0 && l.Burst == 0 }

func (l Limit) validate() error {
	switch {
	case l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
		return fmt.Errorf("%w: Limit.Rate must be a finite number ≥ 0", ErrBadConfig)
	case l.Burst < 0:
		return fmt.Errorf("%w: Limit.Burst must be ≥ 0", ErrBadConfig)
	case l.Algorithm > RED:
		return fmt.Errorf("%w: unknown %v", ErrBadConfig, l.Algorithm)
	case l.Window < 0:
		return fmt.Errorf("%w: Limit.Window must be ≥ 0", ErrBadConfig)
	}
	return nil
}

// LimitFunc returns the limit of a pipe the first time the pipe is used
// (and again after it expired). ok false falls back to Config.Pipes and
// then Config.Default.
//
// Concurrency: it may be called from many goroutines at once, on the Allow
// path of a new pipe, so it must be fast and must not call the Limiter.
type LimitFunc func(pipe string) (l Limit, ok bool)

// Config configures a Limiter. The zero value is a node-local limiter with
// no limits; set Default, Pipes or Limits, and Transport for cluster mode.
type Config struct {
	// Limits, Pipes and Default give a new pipe its limit, tried in that
	// order. A pipe whose limit is the zero Limit is not limited.
	Limits  LimitFunc
	Pipes   map[string]Limit
	Default Limit

	// IdleTimeout expires a pipe nobody asked for that long; default 1m.
	IdleTimeout time.Duration
	// MaxPipes bounds the number of live pipes (per-source-IP pipes under
	// attack); a new pipe beyond it is refused. Default 100000.
	MaxPipes int
	// MaxPipeName bounds a pipe name in bytes; longer names are refused.
	// Default and maximum 255.
	MaxPipeName int

	// Transport turns on cluster mode: limits are for the whole cluster and
	// nodes exchange demand on cluster.ChannelRatelimit. Nil: node-local.
	Transport cluster.Transport
	// Interval is how often demand is exchanged; default 100ms.
	Interval time.Duration
	// Silence is T: a node that has heard nothing from a peer for T stops
	// growing its share (it holds at most its last agreed share), and a
	// node that has heard nothing from a peer for T × (1+ClockDrift) drops
	// that peer's share (if it sees a majority). It must exceed a round
	// trip plus one Interval plus the longest pause a process may take.
	// Default 300ms (three intervals).
	Silence time.Duration
	// JoinGrace is how long a node that starts waits for a peer it has
	// never heard from before counting the peer as silent; meanwhile it
	// admits only its floor share. It covers the transport's reconnect
	// backoff. Default 2s; at least Silence × (1+ClockDrift).
	JoinGrace time.Duration
	// ClockDrift is ε, the most two nodes' clock rates may differ by;
	// default 0.2.
	ClockDrift float64
	// Smoothing is the weight of the newest interval in the exponentially
	// smoothed demand, in (0,1]; default 0.5.
	Smoothing float64
	// Floor is the fraction of a pipe's limit every node may claim however
	// idle it is, split between the nodes, in (0,0.5]; default 0.02.
	Floor float64
	// MaxMessageBytes bounds one demand message; pipes beyond it go in
	// further messages of the same round. Default 16 KiB.
	MaxMessageBytes int

	// Now is the clock; default time.Now. It must be monotonic (time.Now's
	// readings are).
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

const (
	defaultIdleTimeout     = time.Minute
	defaultMaxPipes        = 100000
	maxPipeName            = 255
	defaultInterval        = 100 * time.Millisecond
	defaultSilence         = 300 * time.Millisecond
	defaultClockDrift      = 0.2
	defaultJoinGrace       = 2 * time.Second
	defaultSmoothing       = 0.5
	defaultFloor           = 0.02
	defaultMaxMessageBytes = 16 << 10
	minMessageBytes        = 1024
	defaultWindow          = time.Second
)

func (c Config) withDefaults() Config {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.MaxPipes == 0 {
		c.MaxPipes = defaultMaxPipes
	}
	if c.MaxPipeName == 0 {
		c.MaxPipeName = maxPipeName
	}
	if c.Interval == 0 {
		c.Interval = defaultInterval
	}
	if c.Silence == 0 {
		c.Silence = defaultSilence
	}
	if c.JoinGrace == 0 {
		c.JoinGrace = defaultJoinGrace
	}
	if c.ClockDrift == 0 {
		c.ClockDrift = defaultClockDrift
	}
	if c.Smoothing == 0 {
		c.Smoothing = defaultSmoothing
	}
	if c.Floor == 0 {
		c.Floor = defaultFloor
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = defaultMaxMessageBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(msg string) error { return fmt.Errorf("%w: %s", ErrBadConfig, msg) }
	switch {
	case c.IdleTimeout < 0 || c.MaxPipes < 0 || c.Interval < 0 || c.Silence < 0:
		return bad("durations and counts must not be negative")
	case c.MaxPipeName < 1 || c.MaxPipeName > maxPipeName:
		return bad(fmt.Sprintf("MaxPipeName must be in 1..%d", maxPipeName))
	case c.Silence < 2*c.Interval:
		return bad("Silence must be at least 2 × Interval (one late message must not shrink a share)")
	case c.IdleTimeout < 2*c.Interval:
		return bad("IdleTimeout must be at least 2 × Interval")
	case !(c.ClockDrift > 0 && c.ClockDrift < 1):
		return bad("ClockDrift must be in (0,1)")
	case float64(c.JoinGrace) < float64(c.Silence)*(1+c.ClockDrift):
		return bad("JoinGrace must be at least Silence × (1+ClockDrift)")
	case !(c.Smoothing > 0 && c.Smoothing <= 1):
		return bad("Smoothing must be in (0,1]")
	case !(c.Floor > 0 && c.Floor <= 0.5):
		return bad("Floor must be in (0,0.5]")
	case c.MaxMessageBytes < minMessageBytes:
		return bad(fmt.Sprintf("MaxMessageBytes must be at least %d", minMessageBytes))
	}
	if err := c.Default.validate(); err != nil {
		return err
	}
	for name, l := range c.Pipes {
		if err := l.validate(); err != nil {
			return fmt.Errorf("pipe %q: %w", name, err)
		}
	}
	return nil
}

// limitOf is the limit a new pipe gets, with defaults filled in. A bad
// limit from Limits is an error: the caller refuses the pipe's calls rather
// than admitting them unlimited.
func (c *Config) limitOf(name string) (Limit, error) {
	l, ok := Limit{}, false
	if c.Limits != nil {
		l, ok = c.Limits(name)
	}
	if !ok {
		l, ok = c.Pipes[name]
	}
	if !ok {
		l = c.Default
	}
	if err := l.validate(); err != nil {
		return Limit{}, err
	}
	if l.Window == 0 {
		l.Window = defaultWindow
	}
	if l.Burst == 0 && !l.unlimited() {
		l.Burst = max(1, int(l.Rate*c.Interval.Seconds()))
	}
	return l, nil
}
