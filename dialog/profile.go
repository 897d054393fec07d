package dialog

import (
	"sync"
	"sync/atomic"
)

// counter is one profile key's counts. The numbers are derived from the
// records: a dialog is counted while it is live and in the profile, and
// every record leaves a key at most once (terminated is final, removed
// wins), so a decrement without a matching increment is a bug, not a race.
type counter struct {
	total   atomic.Int64
	local   atomic.Int64
	members map[*record]struct{} // guarded by Tracker.mu
}

// profiles maps keys to counters. Reads take no lock: the map is replaced,
// never changed, when a key first appears (rare: a new tenant), so Count
// is one atomic load and a map lookup. Counters are kept for good; the
// number of keys is the number of distinct profile values ever used.
type profiles struct {
	mu   sync.Mutex // serializes writers
	keys atomic.Pointer[map[ProfileKey]*counter]
}

func (p *profiles) init() {
	m := make(map[ProfileKey]*counter)
	p.keys.Store(&m)
}

func (p *profiles) get(k ProfileKey) *counter { return (*p.keys.Load())[k] }

func (p *profiles) getOrMake(k ProfileKey) *counter {
	if c := p.get(k); c != nil {
		return c
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.keys.Load()
	if c := old[k]; c != nil {
		return c
	}
	c := &counter{members: make(map[*record]struct{})}
	m := make(map[ProfileKey]*counter, len(old)+1)
	for key, v := range old {
		m[key] = v
	}
	m[k] = c
	p.keys.Store(&m)
	return c
}

// apply moves r's counts from the keys in before to the keys in now. The
// caller holds Tracker.mu.
func (p *profiles) apply(t *Tracker, r *record, before, now []ProfileKey) {
	for _, k := range before {
		if !containsKey(now, k) {
			c := p.get(k)
			if c == nil {
				t.stats.underflows.Add(1)
				continue
			}
			t.dec(&c.total)
			if r.origin == t.self {
				t.dec(&c.local)
			}
			delete(c.members, r)
		}
	}
	for _, k := range now {
		if !containsKey(before, k) {
			c := p.getOrMake(k)
			c.total.Add(1)
			if r.origin == t.self {
				c.local.Add(1)
			}
			c.members[r] = struct{}{}
		}
	}
}

// dec decrements a count that must be positive. It never clamps silently:
// an underflow is counted in Stats and tests assert there are none.
func (t *Tracker) dec(v *atomic.Int64) {
	if v.Add(-1) < 0 {
		v.Add(1)
		t.stats.underflows.Add(1)
		t.log.Error("dialog: profile count underflow (bug)")
	}
}

func containsKey(ks []ProfileKey, k ProfileKey) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// Count is the number of live dialogs in the profile with the value,
// cluster-wide: every node holds every dialog, so this node counts what it
// knows. Under a partition each side counts the dialogs it knows of (its
// own and those created before the split); the sides converge when it
// heals. Safe for concurrent use; lock-free after the first use of a key.
func (t *Tracker) Count(profile, value string) int {
	if c := t.profile.get(ProfileKey{profile, value}); c != nil {
		return int(c.total.Load())
	}
	return 0
}

// Counter is a handle on one profile key's counts, for hot paths that read
// the same key again and again: its methods are a single atomic load.
type Counter struct{ c *counter }

// Counter returns the handle of a profile key, creating the key if needed.
// Handles stay valid for the tracker's life.
func (t *Tracker) Counter(profile, value string) Counter {
	return Counter{t.profile.getOrMake(ProfileKey{profile, value})}
}

// Count is Tracker.Count of the handle's key.
func (c Counter) Count() int { return int(c.c.total.Load()) }

// LocalCount is Tracker.LocalCount of the handle's key.
func (c Counter) LocalCount() int { return int(c.c.local.Load()) }

// LocalCount is the number of live dialogs in the profile with the value
// whose initial INVITE went through this node.
func (t *Tracker) LocalCount(profile, value string) int {
	if c := t.profile.get(ProfileKey{profile, value}); c != nil {
		return int(c.local.Load())
	}
	return 0
}

// Members lists the live dialogs in the profile with the value.
func (t *Tracker) Members(profile, value string) []ID {
	c := t.profile.get(ProfileKey{profile, value})
	if c == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ID, 0, len(c.members))
	for r := range c.members {
		out = append(out, r.id)
	}
	return out
}

// AddProfile puts a live dialog in a profile (value "" for a profile
// without values). Adding it twice counts it once.
func (t *Tracker) AddProfile(id ID, profile, value string) error {
	return t.AddProfileLimit(id, profile, value, 0)
}

// AddProfileLimit is AddProfile that refuses with ErrLimit when the
// profile already counts limit or more dialogs (0: no limit). The check
// and the add are atomic on this node; across nodes two admissions at the
// same moment may both pass, as with any limit that takes no round trip.
func (t *Tracker) AddProfileLimit(id ID, profile, value string, limit int) error {
	k := ProfileKey{profile, value}
	var refused bool
	err := t.do(id, func(r *record) bool {
		if r.state == Terminated {
			return false
		}
		for _, m := range r.members {
			if m.key == k {
				return false // in it, or left it for good
			}
		}
		if limit > 0 && t.Count(profile, value) >= limit {
			refused = true
			return false
		}
		return r.addMember(membership{key: k})
	})
	if err == nil && refused {
		err = ErrLimit
	}
	return err
}

// RemoveProfile takes a dialog out of a profile; it cannot rejoin it.
func (t *Tracker) RemoveProfile(id ID, profile, value string) error {
	return t.do(id, func(r *record) bool {
		return r.addMember(membership{key: ProfileKey{profile, value}, removed: true})
	})
}
