package cdr

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestFilter(t *testing.T) {
	in := map[string]any{
		"core-uuid": "c1",
		"variables": map[string]any{"sip_call_id": "abc@host", "billsec": "42", "sip_auth_password": "pw", "huge": "x"},
		"callflow":  []any{map[string]any{"dialplan": "XML"}},
	}
	orig, _ := json.Marshal(in)
	f := &Filter{
		Keep:   []string{"variables.sip_call_id", "variables.billsec", "variables.sip_auth_password", "core-uuid", "missing.path"},
		Drop:   []string{"core-uuid"},
		Redact: []string{"variables.sip_auth_password", "variables.absent"},
		Rename: map[string]string{"variables.sip_call_id": "call_id", "variables.billsec": "billing.seconds"},
	}
	got := f.Apply(in)
	want := map[string]any{
		"call_id":   "abc@host",
		"billing":   map[string]any{"seconds": "42"},
		"variables": map[string]any{"sip_auth_password": "REDACTED"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if after, _ := json.Marshal(in); string(after) != string(orig) {
		t.Fatal("Apply modified the caller's map")
	}
	// Without Keep everything not dropped stays, deep-copied.
	all := (&Filter{Drop: []string{"callflow"}}).Apply(in)
	all["variables"].(map[string]any)["huge"] = "changed"
	if in["variables"].(map[string]any)["huge"] != "x" || all["callflow"] != nil {
		t.Fatal("Drop-only filter shares state with the input or kept a dropped field")
	}
	var nilFilter *Filter
	if !reflect.DeepEqual(nilFilter.Apply(in), in) {
		t.Fatal("nil filter must keep everything")
	}
}
