package usrloc

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Sentinel errors of the usrloc package.
var (
	ErrClosed          = errors.New("usrloc: store closed")
	ErrCSeqOrder       = errors.New("usrloc: CSeq not above the binding's for the same Call-ID")
	ErrTooManyContacts = errors.New("usrloc: too many contacts for the address of record")
	ErrTooLarge        = errors.New("usrloc: binding fields too large")
	ErrBadRegistration = errors.New("usrloc: malformed registration")
	ErrMalformed       = errors.New("usrloc: malformed replication message")
	ErrNotSynced       = errors.New("usrloc: not synced")
)

// Config configures a Store. The zero value of every field means its
// default.
type Config struct {
	// Node is this node's ID, stamped on local writes; default "local".
	Node cluster.NodeID
	// TombstoneTTL is how long an un-registration is remembered so a
	// delayed or replayed older write cannot bring the binding back. It
	// must be at least the longest expiry any registrar grants; default
	// 2 h. A peer away longer than this must resync in full.
	TombstoneTTL time.Duration
	// MaxContacts caps the bindings of one AOR; default 32.
	MaxContacts int
	// ExpiryResolution is how late past its expiry a binding may be
	// removed; default 100 ms.
	ExpiryResolution time.Duration
	// InternMax caps the interned strings (User-Agent, Path, socket, node);
	// past it they are stored with each binding. Default 65536.
	InternMax int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Node == "" {
		c.Node = "local"
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = 2 * time.Hour
	}
	if c.MaxContacts == 0 {
		c.MaxContacts = 32
	}
	if c.ExpiryResolution == 0 {
		c.ExpiryResolution = 100 * time.Millisecond
	}
	if c.InternMax == 0 {
		c.InternMax = 1 << 16
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
	switch {
	case c.TombstoneTTL < time.Second:
		return fmt.Errorf("usrloc: TombstoneTTL %v below 1s", c.TombstoneTTL)
	case c.MaxContacts < 1:
		return errors.New("usrloc: MaxContacts must be positive")
	case c.ExpiryResolution <= 0 || c.ExpiryResolution > time.Minute:
		return errors.New("usrloc: ExpiryResolution must be in (0, 1m]")
	case c.InternMax < 1:
		return errors.New("usrloc: InternMax must be positive")
	case len(c.Node) > 255:
		return errors.New("usrloc: Node longer than 255 bytes")
	}
	return nil
}
