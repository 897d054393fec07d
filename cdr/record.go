package cdr

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Record is one CDR.
type Record struct {
	// ID identifies the record across retries, restarts and duplicates. Set
	// it when the producer has a stable ID of its own (a dialog's terminate
	// hook does); leave it empty to have Post generate one.
	ID string
	// Fields is the CDR as a JSON object. Values must be JSON-encodable;
	// decode incoming JSON with json.Decoder.UseNumber to keep numbers exact.
	Fields map[string]any
	// JSON is the CDR already encoded as a JSON object, for producers that
	// have JSON in hand (FreeSWITCH, NDJSON files); set it instead of Fields.
	// Post spools it compacted, with the ID field put in front, and decodes
	// it only when a Filter is set or it carries IDField itself. A Receiver
	// in Raw mode hands records over in this field.
	JSON json.RawMessage
}

const maxIDLen = 200

func checkID(id string) error {
	if strings.TrimSpace(id) == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: %q: empty or longer than %d bytes", ErrBadID, id, maxIDLen)
	}
	for _, c := range []byte(id) {
		if c < 0x20 || c == 0x7F {
			return fmt.Errorf("%w: %q: control character", ErrBadID, id)
		}
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: %q: not UTF-8", ErrBadID, id)
	}
	return nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// encode picks the record's ID and returns it with the JSON body to spool:
// the filtered fields plus the ID under idField.
func (p *Poster) encode(rec Record) (string, []byte, error) {
	if rec.Fields == nil && rec.JSON != nil {
		if id, body, ok, err := p.encodeRaw(rec); ok || err != nil {
			return id, body, err
		}
		dec := json.NewDecoder(bytes.NewReader(rec.JSON))
		dec.UseNumber()
		if err := dec.Decode(&rec.Fields); err != nil || rec.Fields == nil || dec.More() {
			return rec.ID, nil, fmt.Errorf("%w: JSON is not one object (%v)", ErrBadRecord, err)
		}
	}
	id := rec.ID
	if id == "" {
		if s, ok := rec.Fields[p.cfg.IDField].(string); ok {
			id = s
		} else {
			id = p.cfg.NewID()
		}
	}
	if err := checkID(id); err != nil {
		return "", nil, err
	}
	fields := p.cfg.Filter.Apply(rec.Fields)
	if _, has := fields[p.cfg.IDField]; has {
		// Copy rather than change the caller's map.
		c := make(map[string]any, len(fields))
		for k, v := range fields {
			c[k] = v
		}
		delete(c, p.cfg.IDField)
		fields = c
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if fields == nil {
		body = []byte("{}")
	}
	return id, p.withID(id, body), nil
}

// encodeRaw spools rec.JSON without decoding it when nothing needs to
// look inside: no Filter and no ID field of its own. ok=false asks for the
// decoding path.
func (p *Poster) encodeRaw(rec Record) (id string, body []byte, ok bool, err error) {
	// A \u escape could spell the ID field's name in a way Contains misses.
	if p.cfg.Filter != nil || bytes.Contains(rec.JSON, p.idKey) || bytes.Contains(rec.JSON, []byte(`\u`)) {
		return "", nil, false, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(rec.JSON))
	// Compact validates and also keeps a pretty-printed object on one
	// NDJSON line.
	if err := json.Compact(&buf, rec.JSON); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return rec.ID, nil, false, fmt.Errorf("%w: JSON is not one object (%v)", ErrBadRecord, err)
	}
	id = rec.ID
	if id == "" {
		id = p.cfg.NewID()
	}
	if err := checkID(id); err != nil {
		return id, nil, false, err
	}
	return id, p.withID(id, buf.Bytes()), true, nil
}

// withID puts the ID field first in an encoded JSON object, where a
// Receiver in Raw mode finds it without decoding the record.
func (p *Poster) withID(id string, obj []byte) []byte {
	out := make([]byte, 0, len(p.idKey)+len(id)+len(obj)+8)
	out = append(out, '{')
	out = append(out, p.idKey...)
	out = append(out, ':', '"')
	// checkID let no control characters or invalid UTF-8 through, so only
	// quotes and backslashes need escaping.
	for i := 0; i < len(id); i++ {
		if id[i] == '"' || id[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, id[i])
	}
	out = append(out, '"')
	if len(obj) <= 2 { // "{}"
		return append(out, '}')
	}
	out = append(out, ',')
	return append(out, obj[1:]...)
}
