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
	filtered := p.cfg.Filter.Apply(rec.Fields)
	// A shallow copy keeps the caller's map untouched by the ID field.
	fields := make(map[string]any, len(filtered)+1)
	for k, v := range filtered {
		fields[k] = v
	}
	fields[p.cfg.IDField] = id
	body, err := json.Marshal(fields)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return id, body, nil
}
