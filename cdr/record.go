package cdr

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
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

// withID puts the ID field first in an encoded JSON object.
func (p *Poster) withID(id string, obj []byte) []byte {
	head, _ := json.Marshal(map[string]string{p.cfg.IDField: id})
	if len(obj) <= 2 { // "{}"
		return head
	}
	out := make([]byte, 0, len(head)+len(obj))
	out = append(out, head[:len(head)-1]...)
	out = append(out, ',')
	return append(out, obj[1:]...)
}
