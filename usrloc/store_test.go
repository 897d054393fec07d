package usrloc

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/sipha/sipha/cluster/clustertest"
)

func newTestStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = clustertest.Logger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func reg(aor, callID string, cseq uint32, contacts ...ContactUpdate) Registration {
	return Registration{AOR: aor, CallID: callID, CSeq: cseq, Contacts: contacts}
}

func contact(uri string, exp time.Duration) ContactUpdate {
	return ContactUpdate{URI: uri, Expires: exp, Received: "192.0.2.1:5060", Socket: "udp:127.0.0.1:5060", UserAgent: "ua/1"}
}

func contacts(bs []Binding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Contact)
	}
	return out
}

func TestRegisterLookupOrder(t *testing.T) {
	clustertest.CheckLeaks(t)
	s := newTestStore(t, Config{})
	c1 := contact("sip:a@192.0.2.1", time.Hour)
	c1.Q = 500
	c2 := contact("sip:b@192.0.2.2", time.Hour)
	c2.Q = 1000
	c3 := contact("sip:c@192.0.2.3", time.Hour)
	c3.Q = 500
	if _, err := s.Register(reg("sip:alice@example.com", "cid1", 1, c1), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(reg("sip:alice@example.com", "cid2", 1, c2), nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Register(reg("sip:alice@example.com", "cid3", 1, c3), nil)
	if err != nil {
		t.Fatal(err)
	}
	// q=1.0 first, then the two q=0.5 newest first.
	want := []string{"sip:b@192.0.2.2", "sip:c@192.0.2.3", "sip:a@192.0.2.1"}
	if fmt.Sprint(contacts(got)) != fmt.Sprint(want) {
		t.Fatalf("Register returned %v, want %v", contacts(got), want)
	}
	look := s.Lookup("sip:alice@example.com", nil)
	if fmt.Sprint(contacts(look)) != fmt.Sprint(want) {
		t.Fatalf("Lookup %v, want %v", contacts(look), want)
	}
	b := look[2]
	if b.Received != "192.0.2.1:5060" || b.Socket != "udp:127.0.0.1:5060" || b.UserAgent != "ua/1" ||
		b.CallID != "cid1" || b.CSeq != 1 || b.Q != 500 || b.Node != "local" || b.AOR != "sip:alice@example.com" {
		t.Fatalf("fields lost: %+v", b)
	}
	if s.Len() != 3 {
		t.Fatalf("Len %d, want 3", s.Len())
	}
}

func TestCSeqRules(t *testing.T) {
	s := newTestStore(t, Config{})
	aor := "sip:bob@example.com"
	if _, err := s.Register(reg(aor, "cid", 5, contact("sip:bob@h1", time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	// Same Call-ID, lower CSeq: refused, nothing changed.
	if _, err := s.Register(reg(aor, "cid", 4, contact("sip:bob@h1", 0)), nil); !errors.Is(err, ErrCSeqOrder) {
		t.Fatalf("lower CSeq: %v, want ErrCSeqOrder", err)
	}
	// Same Call-ID and CSeq: a retransmission, answered with the bindings.
	got, err := s.Register(reg(aor, "cid", 5, contact("sip:bob@h1", time.Minute)), nil)
	if err != nil || len(got) != 1 || got[0].Expires.Sub(time.Now()) < 59*time.Minute {
		t.Fatalf("retransmission changed the binding or failed: %v %+v", err, got)
	}
	// A request failing for one contact changes none (atomic).
	_, err = s.Register(reg(aor, "cid", 3, contact("sip:bob@h2", time.Hour), contact("sip:bob@h1", 0)), nil)
	if !errors.Is(err, ErrCSeqOrder) || len(s.Lookup(aor, nil)) != 1 {
		t.Fatalf("partial apply: %v %v", err, contacts(s.Lookup(aor, nil)))
	}
	// Different Call-ID: any CSeq updates.
	if _, err := s.Register(reg(aor, "other", 1, contact("sip:bob@h1", 0)), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Lookup(aor, nil)); n != 0 {
		t.Fatalf("%d bindings after removal", n)
	}
	// The tombstone refuses a replayed older write of the same Call-ID.
	if _, err := s.Register(reg(aor, "other", 0, contact("sip:bob@h1", time.Hour)), nil); !errors.Is(err, ErrCSeqOrder) {
		t.Fatalf("replay over tombstone: %v", err)
	}
}

func TestRemoveAllAndMaxContacts(t *testing.T) {
	s := newTestStore(t, Config{MaxContacts: 2})
	aor := "sip:carol@example.com"
	if _, err := s.Register(reg(aor, "c", 1, contact("sip:1@h", time.Hour), contact("sip:2@h", time.Hour)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(reg(aor, "d", 1, contact("sip:3@h", time.Hour)), nil); !errors.Is(err, ErrTooManyContacts) {
		t.Fatalf("third contact: %v", err)
	}
	// Replacing one by another within one request stays within the limit.
	if _, err := s.Register(reg(aor, "d", 2, contact("sip:3@h", time.Hour), contact("sip:1@h", 0)), nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Register(Registration{AOR: aor, CallID: "e", CSeq: 1, RemoveAll: true}, nil)
	if err != nil || len(got) != 0 || len(s.Lookup(aor, nil)) != 0 || s.Len() != 0 {
		t.Fatalf("remove all: %v %v len=%d", err, contacts(got), s.Len())
	}
	if _, err := s.Register(Registration{AOR: aor, RemoveAll: true, Contacts: []ContactUpdate{contact("x", 1)}}, nil); !errors.Is(err, ErrBadRegistration) {
		t.Fatalf("RemoveAll with contacts: %v", err)
	}
}

func TestInstanceRegIDKey(t *testing.T) {
	s := newTestStore(t, Config{})
	aor := "sip:dave@example.com"
	c := contact("sip:dave@10.0.0.1:5060", time.Hour)
	c.Instance, c.RegID = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>", 1
	s.Register(reg(aor, "a", 1, c), nil)
	// The UA moved (new address, same instance and reg-id): one binding.
	c.URI = "sip:dave@10.0.0.2:5060"
	got, _ := s.Register(reg(aor, "b", 1, c), nil)
	if len(got) != 1 || got[0].Contact != "sip:dave@10.0.0.2:5060" {
		t.Fatalf("outbound flow not replaced: %v", contacts(got))
	}
	c.RegID = 2
	got, _ = s.Register(reg(aor, "b", 2, c), nil)
	if len(got) != 2 {
		t.Fatalf("a second reg-id is a second flow: %v", contacts(got))
	}
}

// TestExpiryByTimer runs with AORs kept in the slot and with ones too long
// for it.
func TestExpiryByTimer(t *testing.T) {
	for _, host := range []string{"x", strings.Repeat("h", slotKeyMax)} {
		t.Run(fmt.Sprintf("host%d", len(host)), func(t *testing.T) { testExpiryByTimer(t, "sip:e@"+host, "sip:f@"+host) })
	}
}

func testExpiryByTimer(t *testing.T, e, f string) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestStore(t, Config{TombstoneTTL: 10 * time.Second})
		var mu sync.Mutex
		var evs []string
		stop := s.Watch("", func(ev Event) {
			mu.Lock()
			evs = append(evs, ev.Kind.String()+" "+ev.Binding.Contact)
			if a := ev.Binding.AOR; a != e && a != f {
				evs = append(evs, "AOR "+a)
			}
			mu.Unlock()
		})
		defer stop()
		s.Register(reg(e, "c", 1, contact("sip:short@h", 2*time.Second), contact("sip:long@h", 5*time.Second)), nil)
		s.Register(reg(f, "c", 1, contact("sip:gone@h", time.Second)), nil)
		s.Register(reg(f, "c", 2, contact("sip:gone@h", 0)), nil)
		time.Sleep(2050 * time.Millisecond)
		if got := contacts(s.Lookup(e, nil)); len(got) != 1 || got[0] != "sip:long@h" {
			t.Fatalf("after 2s: %v", got)
		}
		time.Sleep(3 * time.Second)
		if n := s.Len(); n != 0 {
			t.Fatalf("Len %d after every expiry", n)
		}
		synctest.Wait()
		mu.Lock()
		got := fmt.Sprint(evs)
		mu.Unlock()
		want := "[added sip:short@h added sip:long@h added sip:gone@h removed sip:gone@h expired sip:short@h expired sip:long@h]"
		if got != want {
			t.Fatalf("events %s\nwant   %s", got, want)
		}
		// The tombstone stays until TombstoneTTL, then is purged.
		if c, _ := s.bucketDigest(bucketOf(f)); c != 1 {
			t.Fatalf("tombstone count %d, want 1", c)
		}
		time.Sleep(10 * time.Second)
		if c, _ := s.bucketDigest(bucketOf(f)); c != 0 {
			t.Fatalf("tombstone not purged: count %d", c)
		}
	})
}

// TestAORNotAliased: the store keeps no reference to the caller's AOR
// string, which may be a view of a reused message buffer: events, sync
// chunks and later lookups see the AOR as it was written.
func TestAORNotAliased(t *testing.T) {
	for _, host := range []string{"x", strings.Repeat("h", slotKeyMax)} {
		t.Run(fmt.Sprintf("host%d", len(host)), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newTestStore(t, Config{})
				aor := "sip:a@" + host
				var got []string
				stop := s.Watch("", func(ev Event) { got = append(got, ev.Binding.AOR) })
				buf := []byte(aor)
				view := unsafe.String(&buf[0], len(buf))
				for i, c := range []string{"sip:1@h", "sip:2@h"} {
					if _, err := s.Register(reg(view, "c", uint32(i+1), contact(c, time.Hour)), nil); err != nil {
						t.Fatal(err)
					}
				}
				copy(buf, "sip:b")
				synctest.Wait()
				stop()
				if fmt.Sprint(got) != fmt.Sprint([]string{aor, aor}) {
					t.Fatalf("events name %v, want %s twice", got, aor)
				}
				if n := len(s.Lookup(aor, nil)); n != 2 {
					t.Fatalf("lookup of %s after the buffer changed: %d bindings, want 2", aor, n)
				}
				for _, w := range s.appendBucket(bucketOf(aor), nil) {
					if w.AOR != aor {
						t.Fatalf("sync chunk names %s, want %s", w.AOR, aor)
					}
				}
				for _, b := range s.appendBucketBindings(bucketOf(aor), nil) {
					if b.AOR != aor {
						t.Fatalf("bucket bindings name %s, want %s", b.AOR, aor)
					}
				}
			})
		})
	}
}

func TestWatchOneAOR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newTestStore(t, Config{})
		var got []string
		stop := s.Watch("sip:a@x", func(e Event) { got = append(got, e.Binding.AOR) })
		s.Register(reg("sip:b@x", "c", 1, contact("sip:1@h", time.Hour)), nil)
		s.Register(reg("sip:a@x", "c", 1, contact("sip:1@h", time.Hour)), nil)
		synctest.Wait()
		stop()
		if fmt.Sprint(got) != "[sip:a@x]" {
			t.Fatalf("watcher of one AOR saw %v", got)
		}
	})
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{{TombstoneTTL: time.Millisecond}, {MaxContacts: -1}, {ExpiryResolution: -1}, {InternMax: -1}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestTooLarge(t *testing.T) {
	s := newTestStore(t, Config{})
	big := make([]byte, 70000)
	for i := range big {
		big[i] = 'a'
	}
	if _, err := s.Register(reg("sip:a@x", "c", 1, contact("sip:"+string(big), time.Hour)), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized contact: %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("stored an oversized contact")
	}
}

// TestInternTableFull: once unique User-Agents fill the intern table,
// values are kept inline, and bindings from a new peer still merge (node
// IDs have a table of their own).
func TestInternTableFull(t *testing.T) {
	s := newTestStore(t, Config{InternMax: 2})
	for i := 0; i < 5; i++ {
		c := contact(fmt.Sprintf("sip:%d@h", i), time.Hour)
		c.UserAgent = fmt.Sprintf("unique-agent-%d", i)
		if _, err := s.Register(reg(fmt.Sprintf("sip:u%d@x", i), "c", 1, c), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		b := s.Lookup(fmt.Sprintf("sip:u%d@x", i), nil)
		if len(b) != 1 || b[0].UserAgent != fmt.Sprintf("unique-agent-%d", i) || b[0].Socket != "udp:127.0.0.1:5060" {
			t.Fatalf("binding %d: %+v", i, b)
		}
	}
	w := sampleWire()
	w.Node = "a-new-peer"
	if ok, err := s.merge(&w); !ok || err != nil {
		t.Fatalf("merge from a new peer with a full table: %v %v", ok, err)
	}
	if b := s.Lookup(w.AOR, nil); len(b) != 1 || b[0].Node != "a-new-peer" || b[0].UserAgent != "ua" {
		t.Fatalf("merged binding: %+v", b)
	}
}
