package dataapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"unicode/utf8"

	"github.com/forumads/forumads/web/httpx"
)

// MaxBody is the largest request body the API reads; a larger one is a 413.
const MaxBody = 64 << 10

// decodeBody reads r's body into v strictly (see httpx.DecodeJSON). Before decoding it refuses a
// body that is not valid UTF-8 or that escapes a lone UTF-16 surrogate: encoding/json would turn
// either into U+FFFD silently.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return httpx.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body must be at most %d bytes", MaxBody)
		}
		return httpx.Errorf(http.StatusBadRequest, "unreadable_body", "the body could not be read: %v", err)
	}
	if err := checkRawJSON(raw); err != nil {
		return err
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(raw))
	return httpx.DecodeJSON(w, r2, MaxBody, v)
}

// checkRawJSON refuses text encoding/json would alter: invalid UTF-8 and \u escapes of unpaired
// surrogates. Backslashes only occur inside strings in valid JSON; anything else is left to the
// decoder to refuse.
func checkRawJSON(raw []byte) error {
	if !utf8.Valid(raw) {
		return httpx.Errorf(http.StatusBadRequest, "malformed_json", "the body is not valid UTF-8")
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] == 'u' {
			c, ok := hex4(raw, i+2)
			if ok && c >= 0xD800 && c <= 0xDBFF {
				if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					if lo, ok := hex4(raw, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 11
						continue
					}
				}
				return httpx.Errorf(http.StatusBadRequest, "malformed_json", "malformed JSON at byte %d: an unpaired UTF-16 surrogate escape", i)
			}
			if ok && c >= 0xDC00 && c <= 0xDFFF {
				return httpx.Errorf(http.StatusBadRequest, "malformed_json", "malformed JSON at byte %d: an unpaired UTF-16 surrogate escape", i)
			}
			i += 5
			continue
		}
		i++ // the escaped character
	}
	return nil
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Opt is a field of a request body that may be absent, null or a value; a create and a patch use
// the same body type, so a patch changes only the fields it sets.
type Opt[T any] struct {
	Set  bool // the field was in the body
	Null bool // it was null
	V    T
}

// UnmarshalJSON records that the field was given. A value of the wrong JSON type is an
// *json.UnmarshalTypeError, which the decoder completes with the field's name.
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.V)
}

// Decimal is money in a body: a JSON string ("0.35") or number (0.35), kept as its literal text
// and parsed exactly into micro-units (never through a float).
type Decimal string

// UnmarshalJSON accepts a JSON string or number.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = Decimal(s)
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		*d = Decimal(b)
	default:
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[string]()}
	}
	return nil
}

func jsonKind(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	}
	return "value"
}
