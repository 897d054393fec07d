package usrloc

import (
	"time"

	"github.com/sipha/sipha/cluster"
)

// Binding is one contact registered for an address of record. Its strings
// share memory with the store; they are immutable and stay valid after the
// binding is replaced or removed.
type Binding struct {
	AOR string
	// Contact is the contact URI without the header parameters.
	Contact string
	// Received is the source address the REGISTER came from ("ip:port"):
	// where requests go when the UA is behind NAT.
	Received string
	// Socket is the local socket it came in on ("udp:ip:port"); NAT
	// keepalives and requests to the UA must leave from it.
	Socket string
	// Path is the Path header values (RFC 3327), comma-separated in order.
	Path string
	// Instance is the +sip.instance value and RegID the reg-id (RFC 5626);
	// together they identify the binding instead of Contact.
	Instance string
	RegID    uint32
	// Q is the q-value in thousandths (1000 = q=1.0); 0 when absent.
	Q         uint16
	Expires   time.Time // by this node's clock
	CallID    string
	CSeq      uint32
	UserAgent string
	// Node is the node the UA registered through.
	Node  cluster.NodeID
	Flags uint8
	// Version orders concurrent writes of the binding across nodes.
	Version HLC
}

// Remaining is how long b stays registered after now, rounded up to whole
// seconds as a registrar reports it.
func (b *Binding) Remaining(now time.Time) int {
	d := b.Expires.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// EventKind says what happened to a binding.
type EventKind uint8

const (
	// Added: a binding that did not exist now does.
	Added EventKind = iota + 1
	// Updated: an existing binding was refreshed or changed.
	Updated
	// Removed: the binding was un-registered (here or on another node).
	Removed
	// Expired: the binding's expiry passed.
	Expired
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Removed:
		return "removed"
	case Expired:
		return "expired"
	}
	return "event?"
}

// Event is a change of one binding.
type Event struct {
	Kind EventKind
	// Remote is set when the change came from another node.
	Remote  bool
	Binding Binding
}
