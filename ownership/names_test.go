package ownership

import (
	"errors"
	"strings"
	"testing"

	"github.com/sipha/sipha/cluster"
)

func TestValidName(t *testing.T) {
	good := []string{VIPResource("198.51.100.100"), VIPResource("[2001:db8::1]"), NodeResource("n2"), TenantResource("acme"), "x-1/a/b"}
	for _, n := range good {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "vip", "/x", "vip/", "VIP/x", "vip/a b", "vip/\x00", "vip/é", strings.Repeat("a", 250) + "/" + strings.Repeat("b", 10)}
	for _, n := range bad {
		if err := ValidName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want ErrBadName", n, err)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		spec Spec
		ok   bool
	}{
		{Spec{Name: "vip/a"}, true},
		{Spec{Name: "vip/a", Candidates: []cluster.NodeID{"n1", "n2"}, Policy: Preferred}, true},
		{Spec{Name: "vip/a", Candidates: []cluster.NodeID{"n1", "n1"}}, false},
		{Spec{Name: "vip/a", Candidates: []cluster.NodeID{""}}, false},
		{Spec{Name: "vip/a", Policy: Placed}, false},
		{Spec{Name: "vip/a", Policy: 9}, false},
		{Spec{Name: "vip/a", HoldDown: -1}, false},
		{Spec{Name: "bad"}, false},
	}
	for i, c := range cases {
		err := c.spec.Validate()
		if (err == nil) != c.ok {
			t.Errorf("case %d: Validate() = %v, want ok=%v", i, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadSpec) && !errors.Is(err, ErrBadName) {
			t.Errorf("case %d: error %v wraps neither ErrBadSpec nor ErrBadName", i, err)
		}
	}
}
