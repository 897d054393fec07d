package partition

import "testing"

// The trigger of sticky re-placement: what placement reads (IDs, roles,
// weights), not health and not the order of the list.
func TestSignatureIgnoresHealth(t *testing.T) {
	base := []Member{{ID: "a"}, {ID: "b", Weight: 2}, {ID: "s", Role: Spare}}
	same := [][]Member{
		{{ID: "a", Down: true}, {ID: "b", Weight: 2}, {ID: "s", Role: Spare}},
		{{ID: "s", Role: Spare}, {ID: "a", Weight: 1}, {ID: "b", Weight: 2, Down: true}},
	}
	differ := [][]Member{
		{{ID: "a"}, {ID: "b", Weight: 2}},
		{{ID: "a"}, {ID: "b", Weight: 2}, {ID: "s", Role: Spare}, {ID: "c"}},
		{{ID: "a"}, {ID: "b"}, {ID: "s", Role: Spare}},
		{{ID: "a"}, {ID: "b", Weight: 2}, {ID: "s"}},
		{{ID: "a"}, {ID: "c", Weight: 2}, {ID: "s", Role: Spare}},
	}
	for _, ms := range same {
		if signature(ms) != signature(base) {
			t.Errorf("%v: signature differs from %v", ms, base)
		}
	}
	for _, ms := range differ {
		if signature(ms) == signature(base) {
			t.Errorf("%v: same signature as %v", ms, base)
		}
	}
}
