package cluster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"
)

// Sentinel errors of the cluster package.
var (
	ErrClosed         = errors.New("cluster: transport closed")
	ErrUnknownPeer    = errors.New("cluster: unknown peer")
	ErrTooLarge       = errors.New("cluster: message larger than MaxMessageSize")
	ErrQueueFull      = errors.New("cluster: peer send queue full, message dropped")
	ErrPeerDown       = errors.New("cluster: peer is down, message dropped")
	ErrNoAuth         = errors.New("cluster: no authentication configured (set Secret or TLS, or Insecure explicitly)")
	ErrBadHandshake   = errors.New("cluster: handshake failed")
	ErrAuthFailed     = errors.New("cluster: peer authentication failed")
	ErrVersion        = errors.New("cluster: no common protocol version")
	ErrClusterName    = errors.New("cluster: cluster name mismatch")
	ErrMalformedFrame = errors.New("cluster: malformed frame")
)

// NodeID names a node. It is stable across restarts of the node and unique
// within a cluster.
type NodeID string

// Channel separates the traffic of the blocks that share one transport: each
// block sends and handles messages on its own channel.
type Channel uint8

// Channels of sipha's blocks. Applications may use ChannelUser and above.
const (
	ChannelUsrloc    Channel = 1
	ChannelDialog    Channel = 2
	ChannelRatelimit Channel = 3
	ChannelOwnership Channel = 4
	ChannelPartition Channel = 5
	ChannelUser      Channel = 128
)

// Message is one delivered message.
type Message struct {
	From    NodeID
	Channel Channel
	// Seq is the sender's sequence number for this (sender, receiver,
	// channel) triple. It starts at 1 when the sending transport starts and
	// grows by one for every message the sender accepted for this receiver
	// on this channel, including the ones it later dropped.
	Seq uint64
	// Missed counts messages with sequence numbers between the previous
	// delivered message of this (sender, channel) and this one: messages the
	// sender dropped on a full queue or that were lost with a connection. A
	// block that needs every message asks the sender for a repair when
	// Missed > 0 or Restarted is set.
	Missed uint64
	// Restarted is set on the first message from a new incarnation of the
	// sender (the sender process restarted): earlier state learned from it
	// may be stale and sequence numbers started again.
	Restarted bool
	// Payload is valid only until the handler returns; copy what you keep.
	Payload []byte
}

// Handler handles messages of one channel.
//
// Concurrency: HandleMessage is called from the receiving goroutine of the
// sending peer's connection. Calls for messages of one peer are sequential
// and in the order the peer sent them; calls for different peers may run
// concurrently. It must not block for long: a slow handler stalls that peer's
// connection, the peer's send queue fills and the peer drops messages.
type Handler interface {
	HandleMessage(m Message)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(m Message)

// HandleMessage calls f(m).
func (f HandlerFunc) HandleMessage(m Message) { f(m) }

// Transport is the one pluggable message layer that every sipha block
// replicates over.
//
// The delivery contract, which every implementation keeps and
// clustertest.RunTransport checks:
//   - Messages from one sender to one receiver on one channel arrive in the
//     order they were sent (per-peer FIFO), at most once.
//   - Send and Broadcast never block on the network. They copy the payload,
//     so the caller may reuse it at once. When a peer's bounded queue is full
//     the message is dropped for that peer, counted in stats, and Send
//     returns ErrQueueFull; the sequence number it took stays used, so the
//     receiver sees the gap (Message.Missed).
//   - A message may be lost when a connection breaks; the receiver learns it
//     from the sequence numbers, never from silence.
//   - A peer declared down (or gone) gets nothing: what was queued for it is
//     dropped and Send to it returns ErrPeerDown, so a dead peer costs no
//     memory and a returning one is not fed stale state. It sees the gap on
//     the first message after it is back, and repairs. Broadcast skips such
//     peers without an error.
//   - Messages larger than the implementation's maximum are refused with
//     ErrTooLarge.
//   - A message for a channel with no handler is dropped and counted.
//   - A node never delivers its own Broadcast to itself.
type Transport interface {
	// LocalID is this node's ID.
	LocalID() NodeID
	// Send queues payload for one peer.
	Send(to NodeID, ch Channel, payload []byte) error
	// Broadcast queues payload for every known peer that is not down. It
	// returns the first error met (a full queue); peers after it still get
	// the message.
	Broadcast(ch Channel, payload []byte) error
	// Handle registers the handler for a channel, replacing any earlier one;
	// nil removes it.
	Handle(ch Channel, h Handler)
	// Members lists the known peers (not this node) with their liveness as
	// this node sees it.
	Members() []Member
	// Close stops the transport and waits for its goroutines. It is
	// idempotent.
	Close() error
}

// MemberWatcher is implemented by transports that report liveness changes.
// Blocks find it with a type assertion.
type MemberWatcher interface {
	// WatchMembers calls fn for every state change of a peer until stop is
	// called. Calls are sequential, in the order of the changes, from one
	// goroutine per watcher; fn must not block for long.
	WatchMembers(fn func(MemberEvent)) (stop func())
}

// State is a peer's liveness as seen by this node.
type State uint8

const (
	// StateUnknown: never reached since the peer was added.
	StateUnknown State = iota
	// StateUp: round trips with the peer succeed.
	StateUp
	// StateSuspect: heartbeats have gone unanswered for longer than the
	// suspicion timeout, or the connection broke; not yet declared down.
	StateSuspect
	// StateDown: no round trip for longer than the dead timeout.
	StateDown
	// StateLeft: the peer said goodbye (graceful Close) or was removed.
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case StateUp:
		return "up"
	case StateSuspect:
		return "suspect"
	case StateDown:
		return "down"
	case StateLeft:
		return "left"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Alive reports whether messages to a peer in this state are expected to
// arrive (up, or suspect but not yet declared down).
func (s State) Alive() bool { return s == StateUp || s == StateSuspect }

// Member is a peer and its liveness.
type Member struct {
	ID    NodeID
	Addr  string
	State State
	// Since is when the peer entered State (by the transport's clock).
	Since time.Time
	// RTT is the latest heartbeat round-trip time; zero before the first.
	RTT time.Duration
	// Version is the protocol version negotiated with the peer; 0 before
	// the first handshake.
	Version uint8
}

// MemberEvent is a liveness change of one peer.
type MemberEvent struct {
	Member
	Old State
}

// Network is what a transport listens and dials on. The default is the
// operating system's TCP; clustertest.Network supplies an in-memory network
// with fault injection, so the production transport runs unchanged in tests.
type Network interface {
	Listen(ctx context.Context, addr string) (net.Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCPNetwork is the operating system's TCP network.
type TCPNetwork struct{}

// Listen listens on a TCP address.
func (TCPNetwork) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// Dial dials a TCP address.
func (TCPNetwork) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
