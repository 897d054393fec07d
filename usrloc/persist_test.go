package usrloc

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPersistRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usrloc.db")
	s1 := newTestStore(t, Config{Node: "n1"})
	p1, err := OpenPersister(s1, PersistConfig{Path: path, FlushInterval: 10 * time.Millisecond, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	keep := contact("sip:keep@192.0.2.1", time.Hour)
	keep.Instance, keep.RegID, keep.Q, keep.Path = "<urn:uuid:k>", 2, 700, "<sip:edge;lr>"
	s1.Register(reg("sip:a@x", "c1", 1, keep), nil)
	s1.Register(reg("sip:b@x", "c2", 1, contact("sip:gone@192.0.2.2", time.Hour)), nil)
	s1.Register(reg("sip:b@x", "c2", 2, contact("sip:gone@192.0.2.2", 0)), nil)
	s1.Register(reg("sip:c@x", "c3", 1, contact("sip:short@192.0.2.3", 50*time.Millisecond)), nil)
	time.Sleep(50 * time.Millisecond)
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p1.Stats(); st.Written == 0 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	want := s1.Lookup("sip:a@x", nil)[0]
	s1.Close()
	time.Sleep(60 * time.Millisecond) // the short binding expires while "down"

	s2 := newTestStore(t, Config{Node: "n1"})
	p2, err := OpenPersister(s2, PersistConfig{Path: path, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	got := s2.Lookup("sip:a@x", nil)
	if len(got) != 1 || s2.Len() != 1 {
		t.Fatalf("reloaded %d bindings: %+v (%+v, first %+v)", s2.Len(), got, p2.Stats(), p1.Stats())
	}
	g := got[0]
	if g.Contact != want.Contact || g.Instance != want.Instance || g.RegID != 2 || g.Q != 700 || g.Path != want.Path ||
		g.Version != want.Version || g.Node != "n1" || g.CallID != "c1" || g.UserAgent != "ua/1" {
		t.Fatalf("reloaded %+v\nwant %+v", g, want)
	}
	if d := g.Expires.Sub(want.Expires); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("expiry moved by %v", d)
	}
}

func TestPersistRejectsBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte("not a bolt file at all, not at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, Config{})
	if _, err := OpenPersister(s, PersistConfig{Path: path, Logger: quietLogger(t)}); err == nil {
		t.Fatal("opened a junk file")
	}
	if _, err := OpenPersister(s, PersistConfig{}); err == nil {
		t.Fatal("opened without a path")
	}
}
