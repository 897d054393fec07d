package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Peer is a node this node talks to.
type Peer struct {
	ID   NodeID
	Addr string // host:port of the peer's cluster port
}

// Profile holds the liveness timings. Detection of a dead peer takes at most
// DeadTimeout plus one check tick after its last answered heartbeat.
type Profile struct {
	// HeartbeatInterval is how often a ping is sent to every peer.
	HeartbeatInterval time.Duration
	// SuspectTimeout without an answered ping makes a peer suspect.
	SuspectTimeout time.Duration
	// DeadTimeout without an answered ping makes a peer down.
	DeadTimeout time.Duration
	// Rise is how many answered pings in a row bring a down peer back up.
	// It keeps a peer that answers one ping under load from flapping.
	Rise int
	// DialTimeout bounds one connection attempt including the handshake.
	DialTimeout time.Duration
	// WriteTimeout bounds one write; a peer that stops reading past it has
	// its connection closed (its messages are then lost and seen as a gap).
	WriteTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the reconnect backoff.
	ReconnectMin, ReconnectMax time.Duration
}

// LAN is the profile for nodes on one network: a dead peer is declared down
// within 450 ms of its last answered heartbeat, and a peer must miss about
// three heartbeats in a row before anyone suspects it.
func LAN() Profile {
	return Profile{
		HeartbeatInterval: 100 * time.Millisecond,
		SuspectTimeout:    300 * time.Millisecond,
		DeadTimeout:       400 * time.Millisecond,
		Rise:              2,
		DialTimeout:       1 * time.Second,
		WriteTimeout:      2 * time.Second,
		ReconnectMin:      25 * time.Millisecond,
		ReconnectMax:      1 * time.Second,
	}
}

// WAN is the profile for nodes across data centres (RTT up to ~150 ms and
// occasional loss): dead within about 5 s.
func WAN() Profile {
	return Profile{
		HeartbeatInterval: 500 * time.Millisecond,
		SuspectTimeout:    2500 * time.Millisecond,
		DeadTimeout:       5 * time.Second,
		Rise:              3,
		DialTimeout:       5 * time.Second,
		WriteTimeout:      10 * time.Second,
		ReconnectMin:      200 * time.Millisecond,
		ReconnectMax:      5 * time.Second,
	}
}

// Validate checks the relationships between the timings.
func (p Profile) Validate() error {
	switch {
	case p.HeartbeatInterval <= 0:
		return errors.New("cluster: HeartbeatInterval must be positive")
	case p.SuspectTimeout < 2*p.HeartbeatInterval:
		return errors.New("cluster: SuspectTimeout must be at least 2 × HeartbeatInterval (one late heartbeat must not raise suspicion)")
	case p.DeadTimeout < p.SuspectTimeout:
		return errors.New("cluster: DeadTimeout must be at least SuspectTimeout")
	case p.Rise < 1:
		return errors.New("cluster: Rise must be at least 1")
	case p.DialTimeout <= 0 || p.WriteTimeout <= 0:
		return errors.New("cluster: DialTimeout and WriteTimeout must be positive")
	case p.ReconnectMin <= 0 || p.ReconnectMax < p.ReconnectMin:
		return errors.New("cluster: need 0 < ReconnectMin <= ReconnectMax")
	}
	return nil
}

// Config configures a TCP transport. The zero value of every field but ID,
// Listen and the authentication means a default.
type Config struct {
	// ID is this node's identity; required.
	ID NodeID
	// ClusterName must match on every node; a peer of another cluster is
	// refused. Default "sipha".
	ClusterName string
	// Listen is the address of the cluster port, e.g. "10.0.0.1:7946".
	Listen string
	// Advertise is the address peers dial; default the bound listen address.
	Advertise string
	// Peers are the other nodes. More may be added with AddPeer; a peer that
	// authenticates and advertises an address is added when it connects.
	Peers []Peer

	// Secret, when set, is the shared cluster secret each side proves it
	// knows by an HMAC-SHA256 challenge–response in the handshake; it never
	// crosses the wire. At least 16 bytes.
	Secret []byte
	// TLS, when set, wraps every connection in mutual TLS. It needs
	// Certificates (this node's) and RootCAs (the cluster CA, which also
	// verifies clients). A peer's certificate must name its node ID as a DNS
	// SAN, a URI SAN "sipha:ID", or the subject CN.
	TLS *tls.Config
	// Insecure allows running with neither Secret nor TLS: any process that
	// reaches the port can join. For tests and demos only.
	Insecure bool

	// Profile holds the liveness timings; zero means LAN().
	Profile Profile
	// MaxMessageSize caps one payload; default 4 MiB. Bigger frames close
	// the connection that carried them.
	MaxMessageSize int
	// QueueBytes bounds each peer's send queue; default 8 MiB.
	QueueBytes int

	// Network is what the transport listens and dials on; default TCP.
	Network Network
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives connection and liveness events; default slog.Default().
	Logger *slog.Logger

	// minVersion and maxVersion override the protocol versions this node
	// speaks; tests use them to run N-1 beside N.
	minVersion, maxVersion uint8
}

const (
	defaultClusterName    = "sipha"
	defaultMaxMessageSize = 4 << 20
	defaultQueueBytes     = 8 << 20
	minSecretLen          = 16
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.ClusterName == "" {
		c.ClusterName = defaultClusterName
	}
	if c.Profile == (Profile{}) {
		c.Profile = LAN()
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = defaultMaxMessageSize
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = defaultQueueBytes
	}
	if c.Network == nil {
		c.Network = TCPNetwork{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.minVersion == 0 {
		c.minVersion = ProtocolMin
	}
	if c.maxVersion == 0 {
		c.maxVersion = ProtocolMax
	}
	return c
}

// Validate checks the configuration after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.ID == "" {
		return errors.New("cluster: ID is required")
	}
	if len(c.ID) > maxIDLen || len(c.ClusterName) > maxIDLen {
		return fmt.Errorf("cluster: ID and ClusterName are limited to %d bytes", maxIDLen)
	}
	if c.Listen == "" {
		return errors.New("cluster: Listen is required")
	}
	if c.Secret == nil && c.TLS == nil && !c.Insecure {
		return ErrNoAuth
	}
	if c.Secret != nil && len(c.Secret) < minSecretLen {
		return fmt.Errorf("cluster: Secret must be at least %d bytes", minSecretLen)
	}
	if c.TLS != nil && (len(c.TLS.Certificates) == 0 || c.TLS.RootCAs == nil) {
		return errors.New("cluster: TLS needs Certificates and RootCAs")
	}
	if c.MaxMessageSize < 1 || c.MaxMessageSize > maxFrameLimit {
		return fmt.Errorf("cluster: MaxMessageSize must be in 1..%d", maxFrameLimit)
	}
	if c.QueueBytes < c.MaxMessageSize+frameOverhead {
		return errors.New("cluster: QueueBytes must hold at least one message of MaxMessageSize")
	}
	if c.minVersion > c.maxVersion {
		return errors.New("cluster: minimum protocol version above maximum")
	}
	seen := map[NodeID]bool{c.ID: true}
	for _, p := range c.Peers {
		if p.ID == "" || p.Addr == "" {
			return errors.New("cluster: every peer needs an ID and an Addr")
		}
		if seen[p.ID] {
			return fmt.Errorf("cluster: peer %q listed twice or equal to this node", p.ID)
		}
		seen[p.ID] = true
	}
	return c.Profile.Validate()
}
