package dialog

import (
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/cluster/clustertest"
)

// Bad SIP input gets a clear error or no match, never a panic.
func TestBadSIPInput(t *testing.T) {
	clustertest.CheckLeaks(t)
	tr := newTracker(t, Config{})
	c := call{"c1", "ft", "tt"}

	noTag := parse(t, "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-1\r\n"+
		"From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").(*sip.Request)
	if _, err := tr.Invite(noTag); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("INVITE without From tag: %v", err)
	}
	if _, err := tr.Invite(c.req(t, "BYE", false, 2)); !errors.Is(err, ErrNotInvite) {
		t.Fatalf("BYE as initial INVITE: %v", err)
	}
	if _, err := tr.Invite(c.req(t, "INVITE", false, 2)); !errors.Is(err, ErrNotInvite) {
		t.Fatalf("re-INVITE (To tag) as initial INVITE: %v", err)
	}
	bare := sip.NewRequest(sip.BYE, sip.Uri{Host: "example.com"}) // no headers at all
	if _, ok := tr.Request(bare); ok {
		t.Fatal("a BYE without headers matched")
	}
	if _, ok := tr.Request(c.req(t, "BYE", false, 2)); ok {
		t.Fatal("a BYE for an unknown dialog matched")
	}
	if _, ok := tr.Response(sip.NewResponse(200, "OK")); ok {
		t.Fatal("a response without headers matched")
	}
	if err := tr.Begin(ID{}); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("empty ID: %v", err)
	}
	if err := tr.Answer(ID{"nope", "x"}, "t"); !errors.Is(err, ErrUnknown) {
		t.Fatalf("answer of an unknown dialog: %v", err)
	}
	if tr.Len() != 0 || tr.Stats().Underflows != 0 {
		t.Fatalf("stats %+v", tr.Stats())
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"negative":  {MaxDuration: -time.Second},
		"empty":     {Peers: []cluster.NodeID{""}},
		"heartbeat": {Heartbeat: time.Second, SyncRetry: time.Second},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

// Close is idempotent, stops every goroutine, and the tracker refuses
// work afterwards.
func TestCloseIdempotent(t *testing.T) {
	clustertest.CheckLeaks(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	id := ID{"c", "f"}
	tr.Begin(id)
	tr.Close()
	tr.Close()
	if err := tr.Begin(ID{"d", "f"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
	if err := tr.Bye(id, PartyCaller); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bye after Close: %v", err)
	}
}
