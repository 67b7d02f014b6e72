// This file holds the parts Decode reads from a message: body object members, the v1 and v2 canvas
// fields (callbacks, errbacks, chain, chord), extra headers, and task fields from headers or raw JSON.

package protocol

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// objectFields returns the members of a JSON object, the last value winning
// for duplicate keys.
func objectFields(raw []byte) (map[string][]byte, error) {
	fields := make(map[string][]byte, 16)
	err := eachMember(raw, func(k, v []byte) error {
		fields[unquote(k)] = v
		return nil
	})
	return fields, err
}

// parseV1Canvas reads the v1/hybrid canvas fields callbacks, errbacks and
// chord (v1 has no chain).
func parseV1Canvas(fields map[string][]byte, e *Embed) error {
	var err error
	if raw, ok := fields["callbacks"]; ok {
		if e.Callbacks, err = parseSignatureList(raw); err != nil {
			return fmt.Errorf("callbacks: %w", err)
		}
	}
	if raw, ok := fields["errbacks"]; ok {
		if e.Errbacks, err = parseSignatureList(raw); err != nil {
			return fmt.Errorf("errbacks: %w", err)
		}
	}
	if raw, ok := fields["chord"]; ok {
		if e.Chord, err = parseChord(raw); err != nil {
			return fmt.Errorf("chord: %w", err)
		}
	}
	return nil
}

func parseChord(raw []byte) (*Signature, error) {
	if isNull(raw) {
		return nil, nil
	}
	s := new(Signature)
	if err := parseSignature(raw, s); err != nil {
		return nil, err
	}
	return s, nil
}

// parseEmbed reads the third element of a v2 body; null means no canvas.
func parseEmbed(raw []byte, e *Embed) error {
	switch jsonKind(raw) {
	case 'n':
		return nil
	case '{':
	default:
		return errors.New("embed is not a mapping")
	}
	return eachMember(raw, func(k, v []byte) error {
		var err error
		switch {
		case rawKeyIs(k, "callbacks"):
			e.Callbacks, err = parseSignatureList(v)
		case rawKeyIs(k, "errbacks"):
			e.Errbacks, err = parseSignatureList(v)
		case rawKeyIs(k, "chain"):
			e.Chain, err = parseSignatureList(v)
		case rawKeyIs(k, "chord"):
			e.Chord, err = parseChord(v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", unquote(k), err)
		}
		return nil
	})
}

// collectExtraHeaders copies the headers that are not Celery's own.
func collectExtraHeaders(m *TaskMessage, h map[string]any) {
	for k, v := range h {
		if isCeleryHeader(k) {
			continue
		}
		if m.ExtraHeaders == nil {
			m.ExtraHeaders = make(map[string]any)
		}
		m.ExtraHeaders[k] = normalizeHeader(v, 0)
	}
}

// applyRawField applies a body field given as raw JSON.
func applyRawField(m *TaskMessage, key string, raw []byte) error {
	v, err := rawToAny(raw, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return applyField(m, key, v)
}

// applyField sets one task field from a header value (or a body field
// converted by rawToAny).
func applyField(m *TaskMessage, key string, v any) error {
	var err error
	switch key {
	case "shadow":
		m.Shadow, err = hdrString(v)
	case "eta":
		m.ETA, err = hdrTime(v)
	case "expires":
		m.Expires, err = hdrTime(v)
	case "group":
		m.GroupID, err = hdrString(v)
	case "group_index":
		n, isNil, e := hdrInt(v)
		switch {
		case e != nil:
			err = e
		case isNil:
			m.GroupIndex = nil
		case n < math.MinInt || n > math.MaxInt:
			err = errNotInt
		default:
			i := int(n)
			m.GroupIndex = &i
		}
	case "retries":
		n, _, e := hdrInt(v)
		switch {
		case e != nil:
			err = e
		case n < math.MinInt || n > math.MaxInt:
			err = errNotInt
		default:
			m.Retries = int(n)
		}
	case "timelimit":
		m.TimeLimit, err = hdrTimeLimit(v)
	case "root_id":
		m.RootID, err = hdrString(v)
	case "parent_id":
		m.ParentID, err = hdrString(v)
	case "argsrepr":
		m.ArgsRepr, err = hdrString(v)
	case "kwargsrepr":
		m.KwargsRepr, err = hdrString(v)
	case "origin":
		m.Origin, err = hdrString(v)
	case "ignore_result":
		m.IgnoreResult, err = hdrBool(v)
	case "utc":
		m.UTC, err = hdrBool(v)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// rawToAny converts a valid JSON value to the Go values headers carry:
// nil, bool, string, int64 (float64 when an integer does not fit), float64,
// []any and map[string]any.
func rawToAny(raw []byte, depth int) (any, error) {
	if depth > maxNesting {
		return nil, errors.New("nesting too deep")
	}
	switch jsonKind(raw) {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		return unquote(raw), nil
	case '[':
		var out []any
		err := eachElem(raw, func(e []byte) error {
			v, err := rawToAny(e, depth+1)
			out = append(out, v)
			return err
		})
		if out == nil {
			out = []any{}
		}
		return out, err
	case '{':
		out := map[string]any{}
		err := eachMember(raw, func(k, v []byte) error {
			x, err := rawToAny(v, depth+1)
			out[unquote(k)] = x
			return err
		})
		return out, err
	default:
		s := string(raw)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		f, _ := strconv.ParseFloat(s, 64) // ±Inf when out of range; callers check
		return f, nil
	}
}
