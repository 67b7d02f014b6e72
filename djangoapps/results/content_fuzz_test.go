package results

import (
	"encoding/json"
	"slices"
	"testing"
)

// FuzzDecodeContent: any stored column reads as valid JSON or an error, never a panic.
func FuzzDecodeContent(f *testing.F) {
	for _, s := range []struct{ ctype, enc, text string }{
		{ContentType, ContentEncoding, `{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}`},
		{ContentType, "binary", "WzEsIDJd"},
		{"application/x-python-serialize", "binary", "gAVLAS4="},
		{ContentType, ContentEncoding, ""},
		{ContentType, ContentEncoding, "{"},
	} {
		f.Add(s.ctype, s.enc, s.text)
	}
	f.Fuzz(func(t *testing.T, ctype, enc, text string) {
		raw, err := decodeContent(ctype, enc, &text)
		if err == nil && raw != nil && !json.Valid(raw) {
			t.Fatalf("decodeContent(%q, %q, %q) = %q: not JSON", ctype, enc, text, raw)
		}
	})
}

// FuzzDecodeSubTasks: sub_tasks decode without panics, and what decodes encodes back to the same ids.
func FuzzDecodeSubTasks(f *testing.F) {
	for _, s := range []string{`[null, null]`, `[[["a", null], null], [["b", null], null]]`,
		`[[["g", null], [[["x", null], null]]]]`, `[1]`, `{}`, `[[["", null], null]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids, err := decodeSubTasks(text)
		if err != nil {
			return
		}
		enc, err := encodeSubTasks(ids)
		if err != nil {
			t.Fatalf("encodeSubTasks(%q): %v", ids, err)
		}
		again, err := decodeSubTasks(enc)
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("%q → %q → %s → %q, %v", text, ids, enc, again, err)
		}
	})
}

// FuzzDecodeGroupTuple: a saved group's result decodes without panics, and round-trips.
func FuzzDecodeGroupTuple(f *testing.F) {
	for _, s := range []string{`[["g", null], [[["a", null], null], [["b", null], null]]]`, `[["g", null], []]`,
		`[["g", null], null]`, `[]`, `"x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids, err := decodeGroupTuple(json.RawMessage(text))
		if err != nil {
			return
		}
		enc, err := encodeContent(groupTuple("g", ids))
		if err != nil {
			t.Fatalf("encode %q: %v", ids, err)
		}
		again, err := decodeGroupTuple(json.RawMessage(enc))
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("%q → %q → %s → %q, %v", text, ids, enc, again, err)
		}
	})
}
