package dialog

import (
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// The methods below feed sipgo messages to the tracker. A proxy calls
// Invite for each initial INVITE it accepts, Response for every response
// to an INVITE it forwards upstream (for a forking proxy, the ones it
// forwards: provisional ones and the final one it chose), and Request for
// every other request it routes (ACK, BYE, CANCEL, re-INVITE, …).

// IDOf returns the dialog ID of a request or response as seen from the
// caller's side: Call-ID and From tag.
func IDOf(m sip.Message) (ID, error) {
	cid := m.CallID()
	from := m.From()
	if cid == nil || from == nil {
		return ID{}, fmt.Errorf("%w: no Call-ID or From", ErrBadMessage)
	}
	tag, _ := from.Params.Get("tag")
	if *cid == "" || tag == "" {
		return ID{}, fmt.Errorf("%w: empty Call-ID or From tag", ErrBadMessage)
	}
	return ID{CallID: string(*cid), FromTag: tag}, nil
}

func toTag(m sip.Message) string {
	if to := m.To(); to != nil {
		t, _ := to.Params.Get("tag")
		return t
	}
	return ""
}

// Invite begins tracking the dialog of an initial INVITE (one without a To
// tag). A retransmission returns the same ID.
func (t *Tracker) Invite(req *sip.Request) (ID, error) {
	if !req.IsInvite() || toTag(req) != "" {
		return ID{}, ErrNotInvite
	}
	id, err := IDOf(req)
	if err != nil {
		return ID{}, err
	}
	return id, t.Begin(id)
}

// Response applies a response to the initial INVITE: a 2xx confirms the
// dialog (the first answered fork wins), a final failure ends it. Other
// responses are ignored. It reports the dialog it matched.
func (t *Tracker) Response(res *sip.Response) (ID, bool) {
	cseq := res.CSeq()
	if cseq == nil || cseq.MethodName != sip.INVITE || res.IsProvisional() {
		return ID{}, false
	}
	id, err := IDOf(res)
	if err != nil {
		return ID{}, false
	}
	switch {
	case res.IsSuccess():
		tag := toTag(res)
		if tag == "" {
			return id, false
		}
		err = t.Answer(id, tag)
	case res.StatusCode >= 300:
		err = t.Reject(id, int(res.StatusCode))
	}
	return id, err == nil || err == ErrEnded
}

// Request applies an in-dialog request or a CANCEL: ACK confirms the
// answer, BYE ends the dialog (recording who hung up), CANCEL marks it
// cancelled. A request from the callee carries the tags swapped; a BYE on
// a fork that did not win matches nothing. It reports the dialog matched.
func (t *Tracker) Request(req *sip.Request) (ID, bool) {
	id, err := IDOf(req)
	if err != nil {
		return ID{}, false
	}
	// calleeTag is the callee's tag as this request carries it.
	calleeTag, from := toTag(req), PartyCaller
	t.mu.Lock()
	r := t.dialogs[id]
	if r == nil && calleeTag != "" {
		// Sent by the callee: From and To are swapped.
		id, calleeTag, from = ID{CallID: id.CallID, FromTag: calleeTag}, id.FromTag, PartyCallee
		r = t.dialogs[id]
	}
	matched := r != nil && (r.toTag == "" || calleeTag == "" || calleeTag == r.toTag)
	t.mu.Unlock()
	if !matched {
		return ID{}, false
	}
	switch req.Method {
	case sip.ACK:
		err = t.Ack(id)
	case sip.BYE:
		err = t.Bye(id, from)
	case sip.CANCEL:
		err = t.Cancel(id)
	}
	return id, err == nil || err == ErrEnded
}
