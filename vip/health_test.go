package vip

import "testing"

// keepalived vrrp_script: a state changes only after rise successes or fall
// failures in a row; a result that agrees with the state resets the run.
func TestRiseFall(t *testing.T) {
	s := riseFall{rise: 3, fall: 2, ok: true}
	steps := []struct {
		pass, changed, ok bool
	}{
		{false, false, true}, // 1 failure of 2
		{true, false, true},  // run reset
		{false, false, true}, // 1 of 2
		{false, true, false}, // 2 of 2: failed
		{true, false, false}, // 1 of 3
		{true, false, false}, // 2 of 3
		{false, false, false},
		{true, false, false},
		{true, false, false},
		{true, true, true}, // 3 of 3: healthy
	}
	for i, st := range steps {
		if got := s.observe(st.pass); got != st.changed || s.ok != st.ok {
			t.Fatalf("step %d (pass=%v): changed=%v ok=%v, want %v %v", i, st.pass, got, s.ok, st.changed, st.ok)
		}
	}
}
