package dialog

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// Sentinel errors of the dialog package.
var (
	ErrConfig     = errors.New("dialog: invalid config")
	ErrClosed     = errors.New("dialog: tracker closed")
	ErrNotInvite  = errors.New("dialog: not an initial INVITE")
	ErrBadMessage = errors.New("dialog: malformed SIP message")
	ErrUnknown    = errors.New("dialog: unknown dialog")
	ErrEnded      = errors.New("dialog: dialog already terminated")
	ErrLimit      = errors.New("dialog: profile limit reached")
	ErrDecode     = errors.New("dialog: malformed replication message")
)

// Config configures a Tracker. The zero value is a one-node tracker with the
// defaults below.
type Config struct {
	// Transport replicates dialogs to the other nodes (on
	// cluster.ChannelDialog). Nil: no replication, one node.
	Transport cluster.Transport
	// Ownership decides which node runs a dialog's timers and fires its
	// terminate hook: the holder of ownership.NodeResource(origin). Nil:
	// ownership.NewSingle on the transport's (or "local") ID, which the
	// tracker closes; every node then owns only its own dialogs and nobody
	// takes a dead node's over, so give a cluster a real Manager
	// (raftowner).
	Ownership ownership.Manager
	// Peers are the candidates after this node for its node resource, in
	// order; default the transport's members sorted by ID.
	Peers []cluster.NodeID

	// EarlyTimeout ends a dialog that got no final response; default 3 min.
	EarlyTimeout time.Duration
	// AckTimeout ends a confirmed dialog whose 2xx was not ACKed; default
	// 32 s (64×T1, RFC 3261 §13.3.1.4).
	AckTimeout time.Duration
	// MaxDuration ends a confirmed dialog this long after the answer;
	// default 3 h. Per dialog: Tracker.SetMaxDuration.
	MaxDuration time.Duration
	// TombstoneTTL keeps ended dialogs so a late or replayed update cannot
	// bring them back. It must outlast the longest partition you want to
	// heal without resurrecting ended calls. Default 10 min with a
	// Transport, 0 (drop at once) without.
	TombstoneTTL time.Duration
	// Heartbeat is how often the tracker sends every peer a tiny message so
	// that a lost update shows as a sequence gap (and a resync) within one
	// interval even when no call changes; default 200 ms.
	Heartbeat time.Duration
	// SyncRetry is how long a resync may take before it is asked again;
	// default 2 s.
	SyncRetry time.Duration

	// OnState is called on every node for every state change it observes,
	// local or replicated. OnTerminate is called on the owner of the
	// dialog's node resource only, at least once per dialog across the
	// cluster (see TerminateEvent).
	//
	// Concurrency: hooks run on the goroutine that caused the change (a
	// SIP handler, the transport's receiver, the timer goroutine), never
	// with the tracker's lock held, so they may call the Tracker; calls
	// for different dialogs may run concurrently. They must not block.
	OnState     func(in Info, old State)
	OnTerminate func(ev TerminateEvent)

	// Now is the wall clock for dialog times and timers; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	set(&c.EarlyTimeout, 3*time.Minute)
	set(&c.AckTimeout, 32*time.Second)
	set(&c.MaxDuration, 3*time.Hour)
	if c.Transport != nil {
		set(&c.TombstoneTTL, 10*time.Minute)
	}
	set(&c.Heartbeat, 200*time.Millisecond)
	set(&c.SyncRetry, 2*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the config.
func (c Config) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, a...)...) }
	switch {
	case c.EarlyTimeout < 0 || c.AckTimeout < 0 || c.MaxDuration < 0 || c.TombstoneTTL < 0 || c.Heartbeat < 0 || c.SyncRetry < 0:
		return bad("negative duration")
	case c.Ownership != nil && c.Transport != nil && c.Ownership.LocalID() != c.Transport.LocalID():
		return bad("ownership node %q is not transport node %q", c.Ownership.LocalID(), c.Transport.LocalID())
	case c.Heartbeat != 0 && c.SyncRetry != 0 && c.SyncRetry < 2*c.Heartbeat:
		return bad("SyncRetry %v < 2 × Heartbeat %v", c.SyncRetry, c.Heartbeat)
	}
	for _, p := range c.Peers {
		if p == "" {
			return bad("empty peer")
		}
	}
	return nil
}
