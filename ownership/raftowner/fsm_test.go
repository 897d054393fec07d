package raftowner

import (
	"bytes"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

func applyCmd(t *testing.T, f *fsm, index uint64, c command) applyResult {
	t.Helper()
	res, _ := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: c.encode()}).(applyResult)
	return res
}

func TestFSMAssignIsCompareAndSet(t *testing.T) {
	var got []change
	f := newFSM(func(c []change, _ uint64) { got = append(got, c...) })
	applyCmd(t, f, 1, command{Kind: cmdMember, Member: Member{ID: "a", Addr: "x"}})
	applyCmd(t, f, 2, command{Kind: cmdEnsure, Name: "vip/1", Candidates: []cluster.NodeID{"a", "b"}, Policy: ownership.Preferred})
	if res := applyCmd(t, f, 3, command{Kind: cmdAssign, Name: "vip/1", To: "a"}); !res.Applied {
		t.Fatalf("first assign not applied: %+v", res)
	}
	// A decision taken on the old view (owner "" at epoch 0) is a no-op.
	if res := applyCmd(t, f, 4, command{Kind: cmdAssign, Name: "vip/1", To: "b"}); res.Applied {
		t.Fatal("stale assign applied")
	}
	// Release by the owner, then hand to b.
	if res := applyCmd(t, f, 5, command{Kind: cmdAssign, Name: "vip/1", From: "a", FromEpoch: 1}); !res.Applied {
		t.Fatal("release not applied")
	}
	var r resource
	f.view(func(s *state) { r = *s.resources["vip/1"] })
	if r.Owner != "" || r.Epoch != 2 || r.ReleasedBy != "a" || r.ReleaseIndex != 5 {
		t.Fatalf("after release: %+v", r)
	}
	applyCmd(t, f, 6, command{Kind: cmdAssign, Name: "vip/1", FromEpoch: 2, To: "b"})
	f.view(func(s *state) { r = *s.resources["vip/1"] })
	if r.Owner != "b" || r.Epoch != 3 || r.ReleasedBy != "" {
		t.Fatalf("after reassign: %+v", r)
	}
	// Re-ensuring keeps the owner and epoch, changes candidates.
	applyCmd(t, f, 7, command{Kind: cmdEnsure, Name: "vip/1", Candidates: []cluster.NodeID{"b"}, Policy: ownership.Sticky})
	f.view(func(s *state) { r = *s.resources["vip/1"] })
	if r.Owner != "b" || r.Epoch != 3 || r.Policy != ownership.Sticky || len(r.Candidates) != 1 {
		t.Fatalf("after re-ensure: %+v", r)
	}
	applyCmd(t, f, 8, command{Kind: cmdRemove, Name: "vip/1"})
	if res := applyCmd(t, f, 9, command{Kind: cmdAssign, Name: "vip/1", From: "b", FromEpoch: 3}); res.Err == nil {
		t.Fatal("assign of removed resource: no error")
	}
	want := []change{
		{Name: "vip/1", New: "a", Epoch: 1},
		{Name: "vip/1", Old: "a", OldEpoch: 1, Epoch: 2},
		{Name: "vip/1", New: "b", OldEpoch: 2, Epoch: 3},
		{Name: "vip/1", Old: "b", OldEpoch: 3, Epoch: 3, Removed: true},
	}
	if len(got) != len(want) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if f.applied.Load() != 9 {
		t.Errorf("applied = %d, want 9", f.applied.Load())
	}
}

func TestFSMEpochsOnlyGrowAcrossResources(t *testing.T) {
	f := newFSM(nil)
	applyCmd(t, f, 1, command{Kind: cmdEnsure, Name: "vip/a"})
	applyCmd(t, f, 2, command{Kind: cmdEnsure, Name: "vip/b"})
	applyCmd(t, f, 3, command{Kind: cmdAssign, Name: "vip/a", To: "n1"})
	applyCmd(t, f, 4, command{Kind: cmdAssign, Name: "vip/b", To: "n1"})
	applyCmd(t, f, 5, command{Kind: cmdRemove, Name: "vip/a"})
	applyCmd(t, f, 6, command{Kind: cmdEnsure, Name: "vip/a"})
	applyCmd(t, f, 7, command{Kind: cmdAssign, Name: "vip/a", To: "n2"})
	f.view(func(s *state) {
		if e := s.resources["vip/a"].Epoch; e != 3 {
			t.Errorf("re-created resource got epoch %d, want 3 (the counter survives removal)", e)
		}
	})
}

func TestFSMSnapshotRestore(t *testing.T) {
	f := newFSM(nil)
	applyCmd(t, f, 1, command{Kind: cmdMember, Member: Member{ID: "n1", Addr: "a1"}})
	applyCmd(t, f, 2, command{Kind: cmdMember, Member: Member{ID: "arb", Addr: "a3", Role: RoleArbiter}})
	applyCmd(t, f, 3, command{Kind: cmdEnsure, Name: "vip/a", Candidates: []cluster.NodeID{"n1", "n2"}, Policy: ownership.Preferred, HoldDown: time.Second})
	applyCmd(t, f, 4, command{Kind: cmdEnsure, Name: "tenant/x", Policy: ownership.Placed, Candidates: []cluster.NodeID{"n2"}})
	applyCmd(t, f, 5, command{Kind: cmdAssign, Name: "vip/a", To: "n1"})
	applyCmd(t, f, 6, command{Kind: cmdAssign, Name: "tenant/x", To: "n2"})
	applyCmd(t, f, 7, command{Kind: cmdAssign, Name: "tenant/x", From: "n2", FromEpoch: 2})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	var got []change
	g := newFSM(func(c []change, _ uint64) { got = append(got, c...) })
	applyCmd(t, g, 1, command{Kind: cmdEnsure, Name: "vip/gone"})
	applyCmd(t, g, 2, command{Kind: cmdAssign, Name: "vip/gone", To: "n9"})
	got = nil
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if g.applied.Load() != 7 {
		t.Fatalf("restored applied index %d, want 7: a restored node could never count a lease", g.applied.Load())
	}
	if a, b := f.st.encode(7), g.st.encode(g.applied.Load()); !bytes.Equal(a, b) {
		t.Fatal("restored state differs from the snapshotted one")
	}
	g.view(func(s *state) {
		if r := s.resources["tenant/x"]; r.ReleasedBy != "n2" || r.ReleaseIndex != 7 || s.epoch != 3 {
			t.Errorf("restored tenant/x %+v, epoch counter %d", r, s.epoch)
		}
	})
	// Watchers learn what the restore changed: vip/a appeared owned, vip/gone
	// vanished (tenant/x appeared without an owner: nothing to tell).
	if len(got) != 2 || got[0].Name != "vip/a" || got[0].New != "n1" || !got[1].Removed || got[1].Name != "vip/gone" {
		t.Errorf("restore changes = %+v", got)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte{1, 2, 3}))); err == nil {
		t.Error("restore of garbage: no error")
	}
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMSkipsCorruptEntry(t *testing.T) {
	f := newFSM(nil)
	res, _ := f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: []byte{1, 99}}).(applyResult)
	if res.Err == nil {
		t.Fatal("corrupt entry: no error")
	}
	if f.applied.Load() != 4 {
		t.Fatal("corrupt entry did not advance the applied index")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	cmds := []command{
		{Kind: cmdEnsure, Name: "vip/a", Candidates: []cluster.NodeID{"n1", "n2"}, Policy: ownership.Preferred, HoldDown: 3 * time.Second},
		{Kind: cmdRemove, Name: "vip/a"},
		{Kind: cmdAssign, Name: "vip/a", From: "n1", FromEpoch: 7, To: "n2"},
		{Kind: cmdMember, Member: Member{ID: "n3", Addr: "10.0.0.3:7946", Role: RoleSpare}},
		{Kind: cmdForget, Member: Member{ID: "n3"}},
		{Kind: cmdWeight, Member: Member{ID: "n3"}, Weight: 2.5},
		{Kind: cmdHealth, Member: Member{ID: "n3"}, Down: true},
	}
	for _, c := range cmds {
		got, err := decodeCommand(c.encode())
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !bytes.Equal(got.encode(), c.encode()) {
			t.Errorf("round trip of %+v gave %+v", c, got)
		}
	}
	msgs := []message{
		{Kind: msgRenew, Seq: 9, Index: 100, Flags: flagHealthy},
		{Kind: msgAck, Seq: 9, Index: 120},
		{Kind: msgRequest, ID: 3, Op: opApply, Data: cmds[0].encode()},
		{Kind: msgRequest, ID: 4, Op: opAddVoter, Member: Member{ID: "n4", Addr: "x"}, Voter: true},
		{Kind: msgReply, ID: 4, Err: "boom"},
		{Kind: msgLastAnswer, Index: 7},
		{Kind: msgLastAnswered, Seq: uint64(150 * time.Millisecond), Index: 7},
	}
	for _, m := range msgs {
		got, err := decodeMessage(m.encode())
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !bytes.Equal(got.encode(), m.encode()) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1}, {1, 1}, {1, 9}, append(msgs[0].encode(), 0)} {
		if _, err := decodeMessage(bad); err == nil {
			t.Errorf("decodeMessage(%x): no error", bad)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and
// whatever decodes must encode back to something that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add(command{Kind: cmdEnsure, Name: "vip/a", Candidates: []cluster.NodeID{"n1"}}.encode())
	f.Add(command{Kind: cmdAssign, Name: "vip/a", From: "n1", FromEpoch: 2, To: "n2"}.encode())
	f.Add(message{Kind: msgRenew, Seq: 1, Index: 2, Flags: 1}.encode())
	f.Add(message{Kind: msgRequest, ID: 1, Op: opApply, Data: []byte{1, 2}}.encode())
	st := newState()
	st.apply(command{Kind: cmdEnsure, Name: "vip/a"}, 1)
	st.apply(command{Kind: cmdAssign, Name: "vip/a", To: "n1"}, 2)
	st.apply(command{Kind: cmdMember, Member: Member{ID: "n1", Addr: "a"}}, 3)
	f.Add(st.encode(3))
	st.apply(command{Kind: cmdWeight, Member: Member{ID: "n1"}, Weight: 2}, 4)
	st.apply(command{Kind: cmdHealth, Member: Member{ID: "n1"}, Down: true}, 5)
	f.Add(st.encode(5))
	f.Add(command{Kind: cmdHealth, Member: Member{ID: "n1"}, Down: true}.encode())
	f.Add(message{Kind: msgLastAnswered, Seq: 1e8, Index: 3}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeCommand(b); err == nil {
			if c2, err := decodeCommand(c.encode()); err != nil || !bytes.Equal(c2.encode(), c.encode()) {
				t.Fatalf("command re-decode: %v", err)
			}
		}
		if m, err := decodeMessage(b); err == nil {
			if m2, err := decodeMessage(m.encode()); err != nil || !bytes.Equal(m2.encode(), m.encode()) {
				t.Fatalf("message re-decode: %v", err)
			}
		}
		if s, applied, err := decodeState(b); err == nil {
			if _, _, err := decodeState(s.encode(applied)); err != nil {
				t.Fatalf("state re-decode: %v", err)
			}
		}
	})
}

// Weights and health survive a snapshot; a snapshot without them (as an
// older version wrote it) still reads, and bad values are refused.
func TestMemberInfoSnapshot(t *testing.T) {
	st := newState()
	st.apply(command{Kind: cmdMember, Member: Member{ID: "n1", Addr: "a"}}, 1)
	st.apply(command{Kind: cmdMember, Member: Member{ID: "n2", Addr: "b", Role: RoleSpare}}, 2)
	plain := st.encode(2)
	st.apply(command{Kind: cmdWeight, Member: Member{ID: "n2"}, Weight: 3}, 3)
	st.apply(command{Kind: cmdHealth, Member: Member{ID: "n1"}, Down: true}, 4)
	got, _, err := decodeState(st.encode(4))
	if err != nil {
		t.Fatal(err)
	}
	want := []ownership.Member{{ID: "n1", Addr: "a", Weight: 1}, {ID: "n2", Addr: "b", Role: RoleSpare, Weight: 3, Healthy: true}}
	if ms := got.memberList(); !slices.Equal(ms, want) {
		t.Fatalf("members after restore %+v, want %+v", ms, want)
	}
	old, _, err := decodeState(plain)
	if err != nil || len(old.info) != 0 || !old.memberList()[0].Healthy {
		t.Fatalf("plain snapshot: %v %+v", err, old.memberList())
	}
	for _, bad := range []command{
		{Kind: cmdWeight, Member: Member{ID: "n1"}, Weight: -1},
		{Kind: cmdWeight, Member: Member{ID: "n1"}, Weight: math.Inf(1)},
		{Kind: cmdWeight, Weight: 1},
	} {
		if _, err := decodeCommand(bad.encode()); err == nil {
			t.Errorf("%+v decoded", bad)
		}
	}
	// Back to the defaults leaves nothing behind.
	st.apply(command{Kind: cmdWeight, Member: Member{ID: "n2"}, Weight: 0}, 5)
	st.apply(command{Kind: cmdHealth, Member: Member{ID: "n1"}}, 6)
	if len(st.info) != 0 || !bytes.Equal(st.encode(2), plain) {
		t.Fatalf("info left: %+v", st.info)
	}
}
