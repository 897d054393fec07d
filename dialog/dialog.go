package dialog

import (
	"strconv"
	"time"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

// ID identifies a dialog across the cluster: the Call-ID and the caller's
// From tag of the initial INVITE. It is the same on every node and for every
// fork of the call, so a consumer de-duplicates terminate events by it. The
// callee's tag is not part of it: a node that never saw the 2xx must still
// name the dialog the same way.
type ID struct {
	CallID  string
	FromTag string
}

// String is the stable text form "call-id;from-tag", the idempotency key of
// a terminate event (e.g. for a CDR poster). Neither a Call-ID nor a tag can
// contain ';' in valid SIP, so the form is unambiguous.
func (id ID) String() string { return id.CallID + ";" + id.FromTag }

// State is a dialog's state. States only move forward.
type State uint8

const (
	// Early: the initial INVITE was seen and no final response yet; any
	// number of early dialogs (forks) may exist.
	Early State = iota + 1
	// Confirmed: a 2xx answered the INVITE; one fork won.
	Confirmed
	// Terminated: ended by BYE, CANCEL, a final failure or a timeout.
	Terminated
)

func (s State) String() string {
	switch s {
	case Early:
		return "early"
	case Confirmed:
		return "confirmed"
	case Terminated:
		return "terminated"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Reason says why a dialog ended.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonBye: a BYE from either side; see Info.HungUp.
	ReasonBye
	// ReasonCancel: the caller cancelled before an answer.
	ReasonCancel
	// ReasonRejected: a final failure response (Info.Code).
	ReasonRejected
	// ReasonEarlyTimeout: no final response within Config.EarlyTimeout.
	ReasonEarlyTimeout
	// ReasonNoAck: no ACK within Config.AckTimeout after the 2xx.
	ReasonNoAck
	// ReasonMaxDuration: the call ran longer than its maximum duration.
	ReasonMaxDuration
	// ReasonAPI: the application called Terminate.
	ReasonAPI
)

var reasonNames = [...]string{"none", "bye", "cancel", "rejected", "early-timeout", "no-ack", "max-duration", "api"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// timeout reports whether the reason is a timer's, which only the dialog's
// owner may act on and so is fenced by epoch.
func (r Reason) timeout() bool {
	return r == ReasonEarlyTimeout || r == ReasonNoAck || r == ReasonMaxDuration
}

// Party is a side of the call.
type Party uint8

const (
	PartyNone Party = iota
	// PartyCaller sent the initial INVITE.
	PartyCaller
	// PartyCallee answered it.
	PartyCallee
)

func (p Party) String() string {
	switch p {
	case PartyCaller:
		return "caller"
	case PartyCallee:
		return "callee"
	}
	return "none"
}

// Info is a snapshot of a dialog.
type Info struct {
	ID ID
	// ToTag is the callee's tag of the winning fork ("" until answered).
	ToTag string
	// Origin is the node the initial INVITE went through. Its node resource
	// (ownership.NodeResource) decides which node runs the dialog's timers
	// and fires its terminate hook.
	Origin cluster.NodeID
	State  State
	// Created, Answered and Ended are wall-clock times taken by the node
	// that saw each event (zero if it did not happen).
	Created, Answered, Ended time.Time
	Acked                    bool
	Reason                   Reason
	// Code is the final failure response code for ReasonRejected.
	Code int
	// HungUp says who sent the BYE (PartyNone for other reasons).
	HungUp Party
	// TerminatedBy is the node that ended the dialog, at Epoch of the
	// origin's node resource as that node knew it.
	TerminatedBy cluster.NodeID
	Epoch        ownership.Epoch
	// Profiles lists the profiles the dialog is (or was, once ended) in.
	Profiles []ProfileKey
	// Vars are the application's per-dialog variables.
	Vars map[string]string
}

// SetupTime is the time from the INVITE to the answer, or to the end for an
// unanswered call.
func (i Info) SetupTime() time.Duration {
	switch {
	case !i.Answered.IsZero():
		return i.Answered.Sub(i.Created)
	case !i.Ended.IsZero():
		return i.Ended.Sub(i.Created)
	}
	return 0
}

// Duration is the answered time: from the answer to the end (or zero).
func (i Info) Duration() time.Duration {
	if i.Answered.IsZero() || i.Ended.IsZero() {
		return 0
	}
	return i.Ended.Sub(i.Answered)
}

// ProfileKey names one profile counter: a profile and, for profiles with
// values, the value ("calls-per-tenant", "acme"); Value is "" for a profile
// without values.
type ProfileKey struct {
	Name, Value string
}

// TerminateEvent is what the terminate hook gets: the dialog at its end and
// the stable event ID to de-duplicate on. The hook is at-least-once: after a
// failover the new owner may fire it again, with the same EventID.
type TerminateEvent struct {
	Info
	// EventID is ID.String(), the same on every node and every firing.
	EventID string
	// FiredBy is the node that fired the hook, as owner of the origin's
	// node resource at FiredEpoch.
	FiredBy    cluster.NodeID
	FiredEpoch ownership.Epoch
}
