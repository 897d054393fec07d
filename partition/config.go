package partition

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/sipha/sipha/ownership"
)

// MemberSource gives the committed membership with roles and weights, as
// the ownership layer has applied it on this node.
//
// Concurrency: Members is called from the ownership layer's goroutines and
// from [Partitioner.Placement]; it must be safe for concurrent use and must
// not block on the network.
type MemberSource interface {
	Members() []Member
}

// MemberSourceFunc adapts a function to [MemberSource].
type MemberSourceFunc func() []Member

// Members calls f.
func (f MemberSourceFunc) Members() []Member { return f() }

// Config configures a [Partitioner]. The zero value places tenants
// ("tenant/<key>") by plain rendezvous hashing.
type Config struct {
	// Kind is the resource kind keys are registered under; default
	// ownership.KindTenant, so key "acme.example" is "tenant/acme.example".
	Kind string
	// Options tune placement (bounded loads).
	Options Options
	// HoldDown is how long a returning member must stay alive before its
	// keys move back to it; zero means the ownership layer's default.
	HoldDown time.Duration
	// Logger; default discards.
	Logger *slog.Logger
}

// Validate checks the config.
func (c Config) Validate() error {
	if err := c.Options.Validate(); err != nil {
		return err
	}
	if c.HoldDown < 0 {
		return fmt.Errorf("%w: negative HoldDown", ErrBadConfig)
	}
	if c.Kind != "" {
		if err := ownership.ValidName(c.Kind + "/x"); err != nil {
			return fmt.Errorf("%w: Kind %q: %w", ErrBadConfig, c.Kind, err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Kind == "" {
		c.Kind = ownership.KindTenant
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
