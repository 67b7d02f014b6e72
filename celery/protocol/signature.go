package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Signature is a serialized celery.canvas.Signature: a JSON object with the
// keys task, args, kwargs, options, subtask_type and immutable (plus the rare
// chord_size). Values stay raw JSON; nested signatures inside Options (link,
// link_error, chord, ...) are raw JSON too.
//
// The JSON form round-trips: [Signature.MarshalJSON] writes the keys in
// Python's order, keeps the order of Kwargs, Options and Extra, and writes
// Python's spacing and escapes. (encoding/json compacts a Marshaler's output;
// use MarshalJSON or [PyJSON] to keep the spacing.)
type Signature struct {
	// Task is the task name (celery.group, celery.chain, ... for composites).
	Task string
	// Args are the partial positional arguments. nil is written as [].
	Args []json.RawMessage
	// Kwargs are the partial keyword arguments, in KwargsOrder (see
	// TaskMessage.KwargsOrder for how order and map combine).
	Kwargs      map[string]json.RawMessage
	KwargsOrder []string
	// Options are the apply_async options (task_id, link, queue, ...).
	Options      map[string]json.RawMessage
	OptionsOrder []string
	// SubtaskType is "group", "chain", "chord", ...; "" is JSON null.
	SubtaskType string
	// Immutable is true for .si() signatures: the parent result is not
	// prepended to Args.
	Immutable bool
	// ChordSize is the optional chord_size key; nil leaves it out.
	ChordSize *int
	// Extra keeps unknown keys for the round trip, written after the known
	// ones in ExtraOrder.
	Extra      map[string]json.RawMessage
	ExtraOrder []string
}

// MarshalJSON writes s as Python's json.dumps writes a signature dict.
func (s Signature) MarshalJSON() ([]byte, error) {
	return appendSignature(nil, &s)
}

// UnmarshalJSON parses a signature object. null leaves s unchanged (as
// encoding/json does); any other non-object is an error. Unknown keys go to
// Extra. The input is copied once; the raw values point into that copy.
func (s *Signature) UnmarshalJSON(data []byte) error {
	raw, err := topValue(data)
	if err != nil {
		return fmt.Errorf("protocol: signature: %w", err)
	}
	if isNull(raw) {
		return nil
	}
	return parseSignature(bytes.Clone(raw), s)
}

var errNotObject = errors.New("not a JSON object")

// parseSignature fills s from the valid JSON value raw, which it aliases.
func parseSignature(raw []byte, s *Signature) error {
	*s = Signature{}
	if jsonKind(raw) != '{' {
		return fmt.Errorf("protocol: signature: %w", errNotObject)
	}
	return eachMember(raw, func(k, v []byte) error {
		key := unquote(k)
		var err error
		switch key {
		case "task":
			s.Task, err = rawStringOrNull(v)
		case "args":
			s.Args, err = rawArray(v)
		case "kwargs":
			s.Kwargs, s.KwargsOrder, err = rawObject(v)
		case "options":
			s.Options, s.OptionsOrder, err = rawObject(v)
		case "subtask_type":
			s.SubtaskType, err = rawStringOrNull(v)
		case "immutable":
			switch jsonKind(v) {
			case 't':
				s.Immutable = true
			case 'f', 'n':
				s.Immutable = false
			default:
				err = errors.New("not a boolean")
			}
		case "chord_size":
			if isNull(v) {
				s.ChordSize = nil
				break
			}
			var n int
			if n, err = rawInt(v); err == nil {
				s.ChordSize = &n
			}
		default:
			if s.Extra == nil {
				s.Extra = make(map[string]json.RawMessage)
			}
			if _, dup := s.Extra[key]; !dup {
				s.ExtraOrder = append(s.ExtraOrder, key)
			}
			s.Extra[key] = clip(v)
		}
		if err != nil {
			return fmt.Errorf("protocol: signature key %q: %w", key, err)
		}
		return nil
	})
}

// isSignatureKey reports whether appendSignature writes key itself, so Extra
// may not repeat it.
func isSignatureKey(k string) bool {
	switch k {
	case "task", "args", "kwargs", "options", "subtask_type", "immutable", "chord_size":
		return true
	}
	return false
}

func appendSignature(dst []byte, s *Signature) ([]byte, error) {
	var err error
	dst = append(dst, `{"task": `...)
	dst = appendPyString(dst, s.Task)
	dst = append(dst, `, "args": `...)
	if dst, err = appendPyRawList(dst, s.Args); err != nil {
		return dst, fmt.Errorf("protocol: signature args: %w", err)
	}
	dst = append(dst, `, "kwargs": `...)
	if dst, err = appendPyRawObject(dst, s.KwargsOrder, s.Kwargs); err != nil {
		return dst, fmt.Errorf("protocol: signature kwargs: %w", err)
	}
	dst = append(dst, `, "options": `...)
	if dst, err = appendPyRawObject(dst, s.OptionsOrder, s.Options); err != nil {
		return dst, fmt.Errorf("protocol: signature options: %w", err)
	}
	dst = append(dst, `, "subtask_type": `...)
	if s.SubtaskType == "" {
		dst = append(dst, "null"...)
	} else {
		dst = appendPyString(dst, s.SubtaskType)
	}
	dst = append(dst, `, "immutable": `...)
	dst = strconv.AppendBool(dst, s.Immutable)
	if s.ChordSize != nil {
		dst = append(dst, `, "chord_size": `...)
		dst = strconv.AppendInt(dst, int64(*s.ChordSize), 10)
	}
	for _, k := range orderedKeys(s.ExtraOrder, s.Extra) {
		if isSignatureKey(k) {
			continue
		}
		dst = append(dst, ", "...)
		dst = appendPyString(dst, k)
		dst = append(dst, ": "...)
		if dst, err = appendPyRaw(dst, s.Extra[k]); err != nil {
			return dst, fmt.Errorf("protocol: signature key %q: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

func appendSignatureList(dst []byte, sigs []Signature) ([]byte, error) {
	if sigs == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	for i := range sigs {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		var err error
		if dst, err = appendSignature(dst, &sigs[i]); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// parseSignatureList parses null (nil) or an array of signature objects.
func parseSignatureList(raw []byte) ([]Signature, error) {
	switch jsonKind(raw) {
	case 'n':
		return nil, nil
	case '[':
	default:
		return nil, errors.New("not a list of signatures")
	}
	sigs := make([]Signature, 0, countElems(raw))
	err := eachElem(raw, func(e []byte) error {
		sigs = append(sigs, Signature{})
		return parseSignature(e, &sigs[len(sigs)-1])
	})
	return sigs, err
}

// clip limits a sub-slice's capacity so an append by the user copies instead
// of overwriting the buffer it points into.
func clip(b []byte) json.RawMessage { return json.RawMessage(b[:len(b):len(b)]) }

// rawArray returns the elements of a JSON array; null gives nil.
func rawArray(raw []byte) ([]json.RawMessage, error) {
	switch jsonKind(raw) {
	case 'n':
		return nil, nil
	case '[':
	default:
		return nil, errors.New("not a list")
	}
	items := make([]json.RawMessage, 0, countElems(raw))
	err := eachElem(raw, func(e []byte) error {
		items = append(items, clip(e))
		return nil
	})
	return items, err
}

// rawObject returns the members of a JSON object and their first-seen order,
// with Python's duplicate-key rule (last value wins); null and {} give nil.
func rawObject(raw []byte) (map[string]json.RawMessage, []string, error) {
	switch jsonKind(raw) {
	case 'n':
		return nil, nil, nil
	case '{':
	default:
		return nil, nil, errors.New("not a mapping")
	}
	var m map[string]json.RawMessage
	var order []string
	err := eachMember(raw, func(k, v []byte) error {
		key := unquote(k)
		if m == nil {
			m = make(map[string]json.RawMessage, 4)
		}
		if _, dup := m[key]; !dup {
			order = append(order, key)
		}
		m[key] = clip(v)
		return nil
	})
	return m, order, err
}

func rawStringOrNull(raw []byte) (string, error) {
	switch jsonKind(raw) {
	case 'n':
		return "", nil
	case '"':
		return unquote(raw), nil
	default:
		return "", errors.New("not a string")
	}
}

// rawInt parses an integer JSON number (or an integral float, which Python
// accepts in the same places) that fits in an int.
func rawInt(raw []byte) (int, error) {
	if jsonKind(raw) != '0' {
		return 0, errors.New("not a number")
	}
	return numberToInt(string(raw))
}
