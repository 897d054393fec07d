package dialog

import (
	"fmt"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// parse builds a SIP message from its text, failing the test on error.
func parse(t testing.TB, text string) sip.Message {
	t.Helper()
	m, err := sip.ParseMessage([]byte(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return m
}

// call writes the messages of one call: caller tag ft, callee tag tt.
type call struct{ cid, ft, tt string }

func (c call) head(method, from, fromTag, to, toTag string, cseq int, cseqMethod string) string {
	tt := ""
	if toTag != "" {
		tt = ";tag=" + toTag
	}
	return fmt.Sprintf("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-%s-%d-%s\r\n"+
		"From: <sip:%s@example.com>;tag=%s\r\nTo: <sip:%s@example.com>%s\r\n"+
		"Call-ID: %s\r\nCSeq: %d %s\r\nContent-Length: 0\r\n\r\n",
		c.cid, cseq, method, from, fromTag, to, tt, c.cid, cseq, cseqMethod)
}

func (c call) req(t testing.TB, method string, fromCallee bool, cseq int) *sip.Request {
	h := c.head(method, "alice", c.ft, "bob", c.tt, cseq, method)
	if fromCallee {
		h = c.head(method, "bob", c.tt, "alice", c.ft, cseq, method)
	}
	if method == "INVITE" && !fromCallee && cseq == 1 {
		h = c.head(method, "alice", c.ft, "bob", "", cseq, method)
	}
	if method == "CANCEL" {
		h = c.head(method, "alice", c.ft, "bob", "", 1, method)
	}
	return parse(t, method+" sip:bob@example.com SIP/2.0\r\n"+h).(*sip.Request)
}

func (c call) invite(t testing.TB) *sip.Request { return c.req(t, "INVITE", false, 1) }

// res is a response to the initial INVITE with the callee tag tag.
func (c call) res(t testing.TB, code int, tag string) *sip.Response {
	return parse(t, fmt.Sprintf("SIP/2.0 %d X\r\n", code)+c.head("INVITE", "alice", c.ft, "bob", tag, 1, "INVITE")).(*sip.Response)
}

// hooks records what a tracker's hooks saw.
type hooks struct {
	mu     sync.Mutex
	states []string
	terms  []TerminateEvent
}

func (h *hooks) install(cfg *Config) {
	cfg.OnState = func(in Info, old State) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.states = append(h.states, fmt.Sprintf("%s:%s->%s", in.ID.CallID, old, in.State))
	}
	cfg.OnTerminate = func(ev TerminateEvent) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.terms = append(h.terms, ev)
	}
}

func (h *hooks) terminated() []TerminateEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]TerminateEvent(nil), h.terms...)
}

func newTracker(t testing.TB, cfg Config) *Tracker {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}
