package ownership

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sipha/sipha/cluster"
)

// Sentinel errors of the ownership package.
var (
	ErrNotOwner   = errors.New("ownership: not owner")
	ErrBadName    = errors.New("ownership: malformed resource name")
	ErrBadSpec    = errors.New("ownership: invalid resource spec")
	ErrClosed     = errors.New("ownership: closed")
	ErrStaleEpoch = errors.New("ownership: stale epoch")
)

// Epoch is a fencing token. The ownership layer assigns a new, larger epoch
// at every change of a resource's owner (one counter for the whole cluster,
// so epochs never repeat and only grow). A downstream that remembers the
// largest epoch it has seen for a resource and rejects smaller ones can never
// accept an action from a deposed owner after one from its successor.
type Epoch uint64

// Claim says which node owns a resource at which epoch. The zero Claim
// (empty Node) means "no owner".
type Claim struct {
	Node  cluster.NodeID
	Epoch Epoch
}

// Policy decides where a resource goes when its owner fails and whether it
// moves back.
type Policy uint8

const (
	// Sticky never preempts: the owner keeps the resource while it is alive
	// and healthy; on failure the first live candidate in order takes it
	// and keeps it (keepalived nopreempt).
	Sticky Policy = iota
	// Preferred moves the resource back to the highest-ranked candidate
	// once that node has been alive and healthy for Spec.HoldDown.
	Preferred
	// Placed takes its candidate order from Spec.Place, recomputed from the
	// committed membership, and otherwise behaves like Preferred. partition
	// uses it with a rendezvous hash.
	Placed
)

func (p Policy) String() string {
	switch p {
	case Sticky:
		return "sticky"
	case Preferred:
		return "preferred"
	case Placed:
		return "placed"
	}
	return "policy(" + strconv.Itoa(int(p)) + ")"
}

// PlaceFunc orders the candidates for a resource, best first, from the
// member nodes that may own resources (arbiters excluded), sorted by ID. It
// must be a pure function of its arguments: every node must compute the
// same answer.
type PlaceFunc func(resource string, members []cluster.NodeID) []cluster.NodeID

// Spec registers a resource.
type Spec struct {
	// Name is the resource name, see [ValidName].
	Name string
	// Candidates are the nodes that may own the resource, best first: the
	// first is the primary, the others its ordered standbys. Spare nodes
	// follow them implicitly. Empty means every non-arbiter member, by ID.
	Candidates []cluster.NodeID
	Policy     Policy
	// HoldDown is how long a returning higher-ranked candidate must stay
	// alive and healthy before Preferred or Placed moves the resource back
	// to it. Zero means the implementation's default.
	HoldDown time.Duration
	// Place computes Candidates for the Placed policy; required for it,
	// ignored otherwise.
	Place PlaceFunc
}

// Validate checks the spec.
func (s Spec) Validate() error {
	if err := ValidName(s.Name); err != nil {
		return err
	}
	if s.Policy > Placed {
		return errors.Join(ErrBadSpec, errors.New("unknown policy "+s.Policy.String()))
	}
	if s.Policy == Placed && s.Place == nil {
		return errors.Join(ErrBadSpec, errors.New("policy placed needs Place"))
	}
	if s.HoldDown < 0 {
		return errors.Join(ErrBadSpec, errors.New("negative HoldDown"))
	}
	seen := make(map[cluster.NodeID]bool, len(s.Candidates))
	for _, c := range s.Candidates {
		if c == "" || seen[c] {
			return errors.Join(ErrBadSpec, errors.New("empty or repeated candidate "+strconv.Quote(string(c))))
		}
		seen[c] = true
	}
	return nil
}

// EventKind says what happened to a resource.
type EventKind uint8

const (
	// Acquired: this node now holds the resource (committed to it and
	// under a valid lease) at Event.Claim.Epoch. Start acting as owner.
	Acquired EventKind = iota + 1
	// Lost: this node no longer holds the resource; stop acting at once.
	// It is delivered when the lease lapses, before any other node can be
	// given the resource, and when the resource is moved or removed.
	Lost
	// Moved: the committed owner changed (to another node, or to none).
	// Delivered on every node, including the ones that also get Acquired or
	// Lost.
	Moved
)

func (k EventKind) String() string {
	switch k {
	case Acquired:
		return "acquired"
	case Lost:
		return "lost"
	case Moved:
		return "moved"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event is a change of one resource.
type Event struct {
	Resource string
	Kind     EventKind
	// Claim is the owner after the change (for Lost, the claim that was
	// lost).
	Claim Claim
	// Removed is set when the resource was removed from the table.
	Removed bool
}

// Manager is the ownership interface blocks depend on. Implementations:
// [Single] for one node, and the Raft-backed raftowner.Node.
//
// The safety rule for blocks: act as owner of a resource only right after
// Held returned true, and pass the epoch it returned along with the action,
// so a downstream can reject actions from a stale owner. Acquired and Lost
// events tell when to start and stop; Held is the authority.
type Manager interface {
	// LocalID is this node's ID.
	LocalID() cluster.NodeID
	// Owner reports the committed owner of a resource as this node last
	// learned it. It may be stale; it is for display, routing hints and
	// metrics, never for deciding to act as owner.
	Owner(resource string) (Claim, bool)
	// Held reports whether this node holds the resource now (committed to
	// it and under a valid lease) and at which epoch.
	Held(resource string) (Epoch, bool)
	// Watch calls fn for every event of the resources whose names start
	// with prefix ("" for all). It first delivers the current state: Moved
	// for each known resource and Acquired for each one held.
	//
	// Concurrency: fn is called from one goroutine per watcher, never
	// concurrently with itself, in the order of the events. Events queue
	// without bound while fn runs, so a slow fn delays only its own
	// events; it must not block for long since a late Lost is a late stop.
	// stop removes the watcher and waits for a running fn to return; do
	// not call it from inside fn.
	Watch(prefix string, fn func(Event)) (stop func())
	// Ensure registers the resource or updates its candidates and policy.
	// It returns once the change is committed.
	Ensure(ctx context.Context, spec Spec) error
	// Remove deletes a resource; its holder gets Lost. Removing an absent
	// resource is not an error: Remove is idempotent, so a request retried
	// after a lost reply (raftowner retries across leader changes) cannot
	// fail because its first attempt succeeded.
	Remove(ctx context.Context, resource string) error
}

// PrefixMatch reports whether an event's resource starts with prefix.
func PrefixMatch(prefix string) func(Event) bool {
	return func(e Event) bool { return strings.HasPrefix(e.Resource, prefix) }
}

// WatchChan is the channel form of [Manager.Watch]: events arrive on the
// returned channel in order. The channel is closed after stop. The
// consumer must keep reading: events queue behind an unread one.
func WatchChan(m Manager, prefix string) (<-chan Event, func()) {
	ch := make(chan Event)
	done := make(chan struct{})
	stopWatch := m.Watch(prefix, func(e Event) {
		select {
		case ch <- e:
		case <-done:
		}
	})
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			close(done)
			stopWatch()
			close(ch)
		})
	}
}
