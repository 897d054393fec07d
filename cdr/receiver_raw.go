package cdr

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// rawLines splits an NDJSON body into records without decoding them.
func (rc *Receiver) rawLines(data []byte) ([]Record, error) {
	var recs []Record
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		rec, err := rc.rawRecord(line, "")
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, errors.New("empty batch")
	}
	return recs, nil
}

// rawRecord validates one JSON object and finds its ID.
func (rc *Receiver) rawRecord(data []byte, key string) (Record, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return Record{}, errors.New("record is not a JSON object")
	}
	rec := Record{JSON: data}
	if id, ok := leadingString(data, rc.cfg.IDField); ok {
		rec.ID = id
		return rec, nil
	}
	full, err := rc.decodeFields(data)
	if err != nil {
		return Record{}, err
	}
	switch id, _ := full[rc.cfg.IDField].(string); {
	case id != "":
		rec.ID = id
	case key != "":
		rec.ID = key
	default:
		sum := sha256.Sum256(data)
		rec.ID = "sha256:" + hex.EncodeToString(sum[:16])
	}
	return rec, nil
}

// leadingString reads `{"field":"value"` at the start of obj when value
// has no escapes, the shape Poster.withID writes.
func leadingString(obj []byte, field string) (string, bool) {
	prefix := `{"` + field + `":"`
	if !bytes.HasPrefix(obj, []byte(prefix)) || strings.ContainsAny(field, `"\`) {
		return "", false
	}
	rest := obj[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return "", false
	}
	return string(rest[:end]), true
}
