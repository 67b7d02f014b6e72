package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

// FuzzDecodeBody: decoding never panics; whatever decodes re-encodes, as Python-format JSON that
// Go's decoder accepts, and decodes again to the same events (encoding is a fixed point); bad input
// gets a *DecodeError.
func FuzzDecodeBody(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testenv.FixturesDir(f), "event_*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(b, &fx); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(fx.Messages[0].Body))
	}
	for _, s := range []string{
		`{"type": "x-y", "hostname": "", "timestamp": 0}`,
		`[{"type": "task-started", "hostname": "h", "timestamp": 1e3, "uuid": "\ud83d\ude00", "clock": null}]`,
		`{"type": "t", "hostname": "h", "timestamp": -0.0, "pid": -1, "utcoffset": -14, "v": 123456789012345678901234567890}`,
		`{"type": "t", "hostname": "h", "timestamp": 1, "a": "a", "a": "b"}`,
		`[1, "x", null, {}]`, `[]`, `{}`, `null`, ``, `{"type": "t"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, multi, err := DecodeBody(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
			}
		}
		if !multi && err == nil && len(evs) != 1 {
			t.Fatalf("single body gave %d events", len(evs))
		}
		for i := range evs {
			e := &evs[i]
			if e.Type == "" {
				t.Fatalf("decoded an event without a type: %+v", e)
			}
			b, err := e.MarshalJSON()
			if err != nil {
				t.Fatalf("a decoded event does not encode: %v\n%+v", err, e)
			}
			if !json.Valid(b) || !isASCII(b) {
				t.Fatalf("encoded %q is not ASCII JSON", b)
			}
			again, err := Decode(b)
			if err != nil {
				t.Fatalf("re-decoding %s: %v", b, err)
			}
			b2, err := again.MarshalJSON()
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("not a fixed point:\n%s\n%s (%v)", b, b2, err)
			}
			if again.Type != e.Type || again.Hostname != e.Hostname || again.Clock != e.Clock || again.PID != e.PID ||
				again.UTCOffset != e.UTCOffset || math.Float64bits(again.Timestamp) != math.Float64bits(e.Timestamp) ||
				len(again.Fields) != len(e.Fields) {
				t.Fatalf("standard fields changed: %+v -> %+v", e, again)
			}
			for j := range e.Fields {
				if again.Fields[j].Name != e.Fields[j].Name {
					t.Fatalf("field order changed: %+v -> %+v", e.Fields, again.Fields)
				}
				if !sameJSON(e.Fields[j].Value, again.Fields[j].Value) {
					t.Fatalf("field %q changed: %s -> %s", e.Fields[j].Name, e.Fields[j].Value, again.Fields[j].Value)
				}
			}
			_ = e.Validate() // must not panic
		}
		if multi && err == nil {
			b, err := EncodeBatch(evs)
			if err != nil {
				t.Fatal(err)
			}
			back, m, err := DecodeBody(b)
			if err != nil || !m || len(back) != len(evs) {
				t.Fatalf("batch round trip: %d events, multi %v, %v", len(back), m, err)
			}
			for i := range back {
				x, _ := back[i].MarshalJSON()
				y, _ := evs[i].MarshalJSON()
				if !bytes.Equal(x, y) {
					t.Fatalf("element %d changed in a batch round trip:\n%s\n%s", i, x, y)
				}
			}
		}
	})
}

// sameJSON reports whether a and b hold the same value; numbers compare as Python would read
// them (ints exactly, floats as float64).
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return sameValue(x, y)
}

func sameValue(x, y any) bool {
	switch a := x.(type) {
	case json.Number:
		b, ok := y.(json.Number)
		if !ok {
			return false
		}
		if !strings.ContainsAny(string(a), ".eE") {
			return string(a) == string(b) || strings.TrimPrefix(string(a), "-") == "0" && string(b) == "0"
		}
		fa, errA := strconv.ParseFloat(string(a), 64)
		fb, errB := strconv.ParseFloat(string(b), 64)
		if errA != nil || errB != nil { // beyond float64: kept as written
			return string(a) == string(b)
		}
		return fa == fb
	case []any:
		b, ok := y.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := y.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if !sameValue(v, b[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(x, y)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzParseLoadAvg: never panics; a parsed load average is each input number rounded up to
// hundredths as Celery does: finite, never below the input, at most 0.01 above it (plus float error).
func FuzzParseLoadAvg(f *testing.F) {
	for _, s := range []string{"0.85 1.15 0.77 1/146 27363\n", "0 0 0", "1e3 2 3", "x", "", "-1 2 3", "0.001 0.009 99.991", "0.07 0.57 1.15"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		la, err := ParseLoadAvg(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "events: load average: ") {
				t.Fatalf("error %q", err)
			}
			return
		}
		in := strings.Fields(s)
		for i, v := range la {
			x, err := strconv.ParseFloat(in[i], 64)
			if err != nil {
				t.Fatalf("accepted %q: %v", in[i], err)
			}
			slack := 1e-12 * math.Max(1, x)
			if math.IsNaN(v) || math.IsInf(v, 0) || v < x-slack || v > x+0.01+slack {
				t.Fatalf("value %d: %q gave %v", i, in[i], v)
			}
		}
	})
}

// FuzzCanonical: the encoder's fast path (values copied as they are) only takes values that
// protocol.PyJSON would write unchanged.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`null`, `true`, `0`, `-0`, `-12`, `007`, `1.5`, `"abc"`, `"a\"b"`, `"é"`, `"a\nb"`, `""`, `"`, `-`, `12a`, `"\u00e9"`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !canonical(raw) {
			return
		}
		got, err := protocol.PyJSON(json.RawMessage(raw))
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("canonical(%q) but PyJSON gives %q, %v", raw, got, err)
		}
	})
}
