package ownership_test

import (
	"fmt"
	"testing"

	"github.com/sipha/sipha/cluster"
	"github.com/sipha/sipha/ownership"
)

func TestSingleMembers(t *testing.T) {
	s := ownership.NewSingle("n1")
	got := make(chan []ownership.Member, 2)
	stop := s.WatchMembers(func(ms []ownership.Member) { got <- ms })
	ms := <-got
	stop()
	s.Close()
	want := ownership.Member{ID: "n1", Role: ownership.RoleNode, Weight: 1, Healthy: true}
	if len(ms) != 1 || ms[0] != want {
		t.Fatalf("watched %+v, want [%+v]", ms, want)
	}
	if ms := s.Members(); len(ms) != 1 || ms[0] != want {
		t.Fatalf("Members %+v", ms)
	}
	if len(got) != 0 {
		t.Fatalf("a second delivery: %v", <-got)
	}
}

func TestRoleString(t *testing.T) {
	for r, want := range map[ownership.Role]string{ownership.RoleNode: "node", ownership.RoleSpare: "spare",
		ownership.RoleArbiter: "arbiter", 7: "role(7)"} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", r, r.String(), want)
		}
	}
}

// A block that places work by function of the membership finds the
// committed members through the optional MemberLister ability.
func ExampleMemberLister() {
	var m ownership.Manager = ownership.NewSingle("n1")
	defer m.(*ownership.Single).Close()
	ml, ok := m.(ownership.MemberLister)
	if !ok {
		return // a Manager without it: take the membership from elsewhere
	}
	var active []cluster.NodeID
	for _, mb := range ml.Members() {
		if mb.Role != ownership.RoleArbiter && mb.Healthy {
			active = append(active, mb.ID)
		}
	}
	fmt.Println(active)
	// Output: [n1]
}
