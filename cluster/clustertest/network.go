package clustertest

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Sentinel errors of the clustertest package.
var (
	ErrNetworkClosed = errors.New("clustertest: network closed")
	ErrHostDown      = errors.New("clustertest: host is killed")
	ErrBadAddress    = errors.New("clustertest: bad address")
	ErrBadConfig     = errors.New("clustertest: bad config")
)

// Defaults used when a Config field is zero.
const (
	DefaultBufferSize        = 1 << 20
	DefaultRetransmitTimeout = 200 * time.Millisecond
)

// Config configures a Network. The zero value means defaults.
type Config struct {
	// Seed drives every random choice (which chunks a drop rate delays).
	// The same seed and the same sequence of writes on each connection
	// replay the same schedule.
	Seed int64
	// BufferSize bounds the bytes in flight per direction of a connection
	// (written, not yet read). A Write blocks while it is full. Zero means
	// DefaultBufferSize.
	BufferSize int
	// RetransmitTimeout is the extra delay of a chunk the drop rate "loses".
	// Zero means DefaultRetransmitTimeout.
	RetransmitTimeout time.Duration
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.BufferSize < 0 {
		return fmt.Errorf("%w: BufferSize %d < 0", ErrBadConfig, c.BufferSize)
	}
	if c.RetransmitTimeout < 0 {
		return fmt.Errorf("%w: RetransmitTimeout %v < 0", ErrBadConfig, c.RetransmitTimeout)
	}
	return nil
}

// Link is a one-way path between two hosts.
type Link struct{ From, To string }

// Stats is a snapshot of the bytes on every link that carried any.
type Stats struct {
	// Delivered counts bytes that reached the receiving host: read by
	// the application or waiting in its receive buffer.
	Delivered map[Link]int64
	// Pending counts bytes written and not yet delivered: still within
	// their link delay, or held by a partition, cut or blackhole.
	Pending map[Link]int64
}

// Network is an in-memory stream network of named hosts with fault
// injection. All its methods are safe for concurrent use.
type Network struct {
	seed    int64
	bufSize int
	rto     time.Duration

	// mu guards everything below and every host, listener and conn of the
	// network. One lock keeps fault changes atomic across all connections;
	// it is never held while blocking.
	mu        sync.Mutex
	closed    bool
	hosts     map[string]*Host
	conns     map[*conn]struct{}
	group     map[string]int // nil when not partitioned
	cuts      map[Link]bool
	holes     map[string]bool
	delay     time.Duration
	linkDelay map[Link]time.Duration
	dropRate  float64
	delivered map[Link]int64
	// changed is closed and replaced at every fault change and at Close,
	// waking dials that wait for a link to open.
	changed chan struct{}
}

// NewNetwork returns a Network with default settings whose random choices
// follow seed. Log the seed in tests so a failure can be replayed.
func NewNetwork(seed int64) *Network {
	n, _ := New(Config{Seed: seed}) // a zero Config always validates
	return n
}

// New returns a Network configured by cfg.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Network{
		seed:      cfg.Seed,
		bufSize:   cfg.BufferSize,
		rto:       cfg.RetransmitTimeout,
		hosts:     make(map[string]*Host),
		conns:     make(map[*conn]struct{}),
		cuts:      make(map[Link]bool),
		holes:     make(map[string]bool),
		linkDelay: make(map[Link]time.Duration),
		delivered: make(map[Link]int64),
		changed:   make(chan struct{}),
	}
	if n.bufSize == 0 {
		n.bufSize = DefaultBufferSize
	}
	if n.rto == 0 {
		n.rto = DefaultRetransmitTimeout
	}
	return n, nil
}

// Host returns the host with this name, creating it on first use. A host's
// address is its name; names must not contain ':'.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hostLocked(name)
}

func (n *Network) hostLocked(name string) *Host {
	h := n.hosts[name]
	if h == nil {
		h = newHost(n, name)
		n.hosts[name] = h
	}
	return h
}

// Close closes every listener and connection of the network; later Listen
// and Dial calls fail with ErrNetworkClosed. It is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	now := time.Now()
	for c := range n.conns {
		c.closed = true
		c.dropLocked(now)
	}
	for _, h := range n.hosts {
		for _, l := range h.listeners {
			l.closeLocked(now)
		}
	}
	close(n.changed)
	return nil
}

// Partition splits the hosts into groups that exchange no bytes with each
// other. Hosts named in no group form one more group together. It replaces
// any earlier partition; cuts and blackholes stay.
func (n *Network) Partition(groups ...[]string) {
	n.change(func() {
		n.group = make(map[string]int)
		for i, g := range groups {
			for _, h := range g {
				n.group[h] = i
			}
		}
	})
}

// Cut stops the bytes from one host to another; the other way still flows.
func (n *Network) Cut(from, to string) {
	n.change(func() { n.cuts[Link{from, to}] = true })
}

// Blackhole makes a host vanish silently: nothing reaches it or leaves it,
// nobody is told, and dials to it hang.
func (n *Network) Blackhole(host string) {
	n.change(func() { n.holes[host] = true })
}

// Heal removes every partition, cut and blackhole. Held bytes are then
// delivered in order. Delays and the drop rate stay.
func (n *Network) Heal() {
	n.change(func() {
		n.group = nil
		clear(n.cuts)
		clear(n.holes)
	})
}

// SetDelay sets the one-way latency of every link between two different
// hosts that has no SetLinkDelay of its own.
func (n *Network) SetDelay(d time.Duration) {
	n.change(func() { n.delay = max(d, 0) })
}

// SetLinkDelay sets the one-way latency from one host to another, overriding
// SetDelay; a negative d removes the override. Bytes already written keep
// their delivery time.
func (n *Network) SetLinkDelay(from, to string, d time.Duration) {
	n.change(func() {
		if d < 0 {
			delete(n.linkDelay, Link{from, to})
		} else {
			n.linkDelay[Link{from, to}] = d
		}
	})
}

// SetDropRate sets the probability, clamped to [0, 1], that a written chunk
// is lost once and retransmitted: it arrives a RetransmitTimeout late, still
// in order, as TCP turns loss into delay.
func (n *Network) SetDropRate(p float64) {
	if math.IsNaN(p) {
		p = 0
	}
	n.change(func() { n.dropRate = min(max(p, 0), 1) })
}

// Stats returns a snapshot of the bytes delivered and pending per link.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := Stats{Delivered: make(map[Link]int64), Pending: make(map[Link]int64)}
	for l, b := range n.delivered {
		s.Delivered[l] = b
	}
	now := time.Now()
	for c := range n.conns {
		p := c.in
		l := Link{p.from, p.to}
		k := p.readable(now, n.linkOpen(p.from, p.to))
		if b := p.readableBytes(k); b > 0 {
			s.Delivered[l] += int64(b)
		}
		if b := p.size - p.readableBytes(k); b > 0 {
			s.Pending[l] += int64(b)
		}
	}
	return s
}

// Delivered returns the bytes delivered from one host to another so far.
func (n *Network) Delivered(from, to string) int64 {
	return n.Stats().Delivered[Link{from, to}]
}

// change applies a fault change atomically. Bytes that reached their
// receiver before the change stay delivered, so everything on a link that
// was open is settled first; then every waiter re-evaluates.
func (n *Network) change(fn func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		fn()
		return
	}
	now := time.Now()
	for c := range n.conns {
		c.settle(now)
	}
	fn()
	n.wakeAllLocked()
}

// wakeAllLocked makes every blocked call re-evaluate the network.
func (n *Network) wakeAllLocked() {
	for c := range n.conns {
		c.wake()
	}
	for _, h := range n.hosts {
		for _, l := range h.listeners {
			l.wake()
		}
	}
	close(n.changed)
	n.changed = make(chan struct{})
}

// linkOpen reports whether bytes from one host reach another now.
func (n *Network) linkOpen(from, to string) bool {
	if from == to {
		return true
	}
	if n.holes[from] || n.holes[to] || n.cuts[Link{from, to}] {
		return false
	}
	if n.group != nil && n.groupOf(from) != n.groupOf(to) {
		return false
	}
	return true
}

func (n *Network) groupOf(host string) int {
	if g, ok := n.group[host]; ok {
		return g
	}
	return -1
}

// delayOf is the one-way latency from one host to another.
func (n *Network) delayOf(from, to string) time.Duration {
	if d, ok := n.linkDelay[Link{from, to}]; ok {
		return d
	}
	if from == to {
		return 0
	}
	return n.delay
}
