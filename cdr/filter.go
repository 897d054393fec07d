package cdr

import (
	"fmt"
	"strings"
)

// Filter trims and rewrites a record's fields before it is spooled:
// FreeSWITCH CDRs carry every channel variable and call-flow step, and
// most collectors want a dozen of them. Paths are dot-separated keys into
// nested objects ("variables.sip_call_id"). Steps run in the order Keep,
// Drop, Redact, Rename. A path that is absent is ignored. The caller's map
// is never modified.
type Filter struct {
	// Keep, when not empty, keeps only these paths (and the objects that
	// lead to them).
	Keep []string
	// Drop removes these paths.
	Drop []string
	// Redact replaces the values at these paths with RedactWith.
	Redact []string
	// RedactWith is the replacement value; default "REDACTED".
	RedactWith string
	// Rename moves the value at each key path to the value path, creating
	// objects on the way ("variables.sip_call_id" → "call_id").
	Rename map[string]string
}

func (f *Filter) validate() error {
	if f == nil {
		return nil
	}
	paths := append(append(append([]string(nil), f.Keep...), f.Drop...), f.Redact...)
	for from, to := range f.Rename {
		paths = append(paths, from, to)
	}
	for _, p := range paths {
		for _, part := range strings.Split(p, ".") {
			if part == "" {
				return fmt.Errorf("%w: filter path %q has an empty element", ErrConfig, p)
			}
		}
	}
	return nil
}

// Apply returns the filtered copy of fields. A nil Filter returns fields.
func (f *Filter) Apply(fields map[string]any) map[string]any {
	if f == nil {
		return fields
	}
	var out map[string]any
	if len(f.Keep) > 0 {
		out = map[string]any{}
		for _, p := range f.Keep {
			if v, ok := lookup(fields, p); ok {
				set(out, p, deepCopy(v))
			}
		}
	} else {
		out = deepCopy(fields).(map[string]any)
	}
	for _, p := range f.Drop {
		take(out, p)
	}
	with := f.RedactWith
	if with == "" {
		with = "REDACTED"
	}
	for _, p := range f.Redact {
		if _, ok := lookup(out, p); ok {
			set(out, p, with)
		}
	}
	// Take every source first so one rename's target cannot feed another.
	moved := map[string]any{}
	for from, to := range f.Rename {
		if v, ok := take(out, from); ok {
			moved[to] = v
		}
	}
	for to, v := range moved {
		set(out, to, v)
	}
	return out
}

func lookup(m map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	for i, k := range parts {
		v, ok := m[k]
		if !ok {
			return nil, false
		}
		if i == len(parts)-1 {
			return v, true
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, false
		}
	}
	return nil, false
}

// set stores v at path, replacing non-objects on the way with objects.
func set(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, k := range parts[:len(parts)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func take(m map[string]any, path string) (any, bool) {
	parts := strings.Split(path, ".")
	for _, k := range parts[:len(parts)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	k := parts[len(parts)-1]
	v, ok := m[k]
	delete(m, k)
	return v, ok
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
