package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

func (r *Reader) nextJSONL() (Record, error) {
	for {
		b, tooLong, err := r.lines.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Record{}, io.EOF
			}
			return Record{}, fmt.Errorf("feed: %w", err)
		}
		if !tooLong && isBlank(b) {
			continue
		}
		rr := &r.rr
		rr.reset(r.lines.line, b)
		if tooLong {
			rr.rowErr("", fmt.Sprintf("row longer than %d bytes", MaxRowBytes))
			return r.finish(rr, nil), nil
		}
		notices := r.parseJSON(rr, bytes.TrimSpace(b))
		return r.finish(rr, notices), nil
	}
}

// parseJSON collects the fields of one JSON line and returns the notices for unknown fields
// seen for the first time.
func (r *Reader) parseJSON(rr *rawRow, b []byte) []Issue {
	if len(b) == 0 || b[0] != '{' {
		rr.rowErr("", "not a JSON object (each line must be one {...} object)")
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		rr.rowErr("", "invalid JSON: "+err.Error())
		return nil
	}
	if countKeys(b) != len(m) {
		name := duplicateKey(b)
		rr.rowErr(SafeText(name, 200), fmt.Sprintf("the field %q appears twice in the object", SafeText(name, 200)))
		// Still name the row in the error.
		for _, f := range []field{fKind, fExternalID} {
			if v, ok := m[fieldNames[f]]; ok && len(v) > 0 && v[0] == '"' {
				rr.set(f, jsonString(v))
			}
		}
		return nil
	}
	var unknown []string
	for k, v := range m {
		f, ok := lookupField(k)
		if !ok {
			if name := SafeText(k, 200); !r.unknown[name] {
				r.unknown[name] = true
				unknown = append(unknown, name)
			}
			continue
		}
		setJSON(rr, f, v)
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	notices := make([]Issue, len(unknown))
	for i, name := range unknown {
		notices[i] = r.unknownNotice(rr.line, name, rr.raw)
	}
	return notices
}

func isListField(f field) bool {
	return f == fForums || f == fCategories || f == fCountries || f == fPlacements
}

// setJSON records one known field from its raw JSON value.
func setJSON(rr *rawRow, f field, v json.RawMessage) {
	name := fieldNames[f]
	if !utf8.Valid(v) {
		rr.fieldErr(f, name+": not valid UTF-8 text")
		return
	}
	switch v[0] {
	case 'n': // null: as if absent
	case '"':
		rr.set(f, jsonString(v))
	case '[':
		if !isListField(f) {
			rr.fieldErr(f, name+": must be a string, got an array")
			return
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(v, &elems); err != nil {
			rr.fieldErr(f, name+": invalid list: "+err.Error())
			return
		}
		list := make([]string, 0, len(elems))
		for _, e := range elems {
			if len(e) == 0 || e[0] != '"' {
				rr.fieldErr(f, fmt.Sprintf("%s: list entries must be strings, got %s", name, quote(string(e))))
				return
			}
			list = append(list, jsonString(e))
		}
		rr.setList(f, list)
	case 't', 'f':
		rr.fieldErr(f, fmt.Sprintf("%s: must be a string, got %s", name, v))
	case '{':
		rr.fieldErr(f, name+": must be a string, got an object")
	default: // a number: its literal text
		rr.set(f, string(v))
	}
}

// jsonString decodes a JSON string token that json.Unmarshal already accepted.
func jsonString(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	_ = json.Unmarshal(v, &s) // valid: it came out of a successful Unmarshal
	return s
}

// countKeys counts the members of the top-level object in valid JSON (colons at depth 1
// outside strings).
func countKeys(b []byte) int {
	depth, n := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ':':
			if depth == 1 {
				n++
			}
		}
	}
	return n
}

// duplicateKey returns the first repeated member name of the top-level object in valid JSON.
func duplicateKey(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := t.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}
