package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/forumads/forumads/internal/testenv"
)

func TestParseOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		out        string
		wantSent   []string
		wantReport string
		wantLine   int  // line of the *outputError, 0 for none
		noReport   bool // errNoReport
	}{
		{name: "report only", out: `{"report": {"value": 5}}` + "\n", wantReport: `{"value": 5}`},
		{name: "sent then report", out: "{\"sent\": \"a\"}\n\n{\"sent\": \"b\"}\n{\"report\": [1]}\n",
			wantSent: []string{"a", "b"}, wantReport: `[1]`},
		{name: "no trailing newline", out: `{"sent": "a"}` + "\n" + `{"report": "x"}`, wantSent: []string{"a"}, wantReport: `"x"`},
		{name: "empty", out: "", noReport: true},
		{name: "sent without report", out: `{"sent": "a"}` + "\n", wantSent: []string{"a"}, noReport: true},
		{name: "text after report", out: "{\"report\": 1}\n{\"sent\": \"a\"}\n", wantLine: 2},
		{name: "traceback line", out: "{\"sent\": \"a\"}\nTraceback (most recent call last):\n", wantSent: []string{"a"}, wantLine: 2},
		{name: "both keys", out: `{"sent": "a", "report": 1}`, wantLine: 1},
		{name: "neither key", out: `{}`, wantLine: 1},
		{name: "unknown key", out: `{"sent": "a", "other": 1}`, wantLine: 1},
		{name: "null report", out: `{"report": null}`, wantLine: 1},
		{name: "empty id", out: `{"sent": ""}`, wantLine: 1},
		{name: "id not a string", out: `{"sent": 5}`, wantLine: 1},
		{name: "two values on a line", out: `{"report": 1} {"report": 2}`, wantLine: 1},
		{name: "stray bracket", out: `{"report": 1}]`, wantLine: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sent, report, err := parseOutput([]byte(tt.out))
			if !reflect.DeepEqual(sent, tt.wantSent) {
				t.Errorf("sent = %q, want %q", sent, tt.wantSent)
			}
			var oe *outputError
			switch {
			case tt.noReport:
				if !errors.Is(err, errNoReport) {
					t.Errorf("err = %v, want errNoReport", err)
				}
			case tt.wantLine > 0:
				if !errors.As(err, &oe) || oe.Line != tt.wantLine {
					t.Errorf("err = %v, want an *outputError on line %d", err, tt.wantLine)
				}
			default:
				if err != nil || string(report) != tt.wantReport {
					t.Errorf("report = %s, %v; want %s", report, err, tt.wantReport)
				}
			}
			if err != nil && report != nil {
				t.Errorf("a report (%s) came with the error %v", report, err)
			}
		})
	}
}

// encodeOutput writes what client.py would print for these ids and report.
func encodeOutput(t testing.TB, sent []string, report json.RawMessage) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, id := range sent {
		line, err := json.Marshal(map[string]string{"sent": id})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteString(`{"report": `)
	b.Write(report)
	b.WriteString("}\n")
	return b.Bytes()
}

// FuzzParseOutput checks that parseOutput never panics, fails only with its typed errors, and that
// what it accepts survives being printed again.
func FuzzParseOutput(f *testing.F) {
	f.Add([]byte("{\"sent\": \"6f1c0e4a-3c1e-4d2b-9a57-0f4f6b1f2a11\"}\n{\"report\": {\"value\": 5, \"state\": \"SUCCESS\"}}\n"))
	f.Add([]byte("{\"report\": {\"raised\": {\"class\": \"DiagError\", \"str\": \"boom\"}}}"))
	f.Add([]byte("{\"sent\": \"a\"}\nTraceback (most recent call last):\n  File \"client.py\"\n"))
	f.Add([]byte("{\"report\": 1}\n{\"report\": 2}\n"))
	// Real Celery payloads as reports: the task bodies and result values of the captured fixtures.
	dir := testenv.FixturesDir(f)
	for _, name := range []string{"v2_kwargs_unicode_nested.json", "v2_plain_args.json", "v1_plain_args.json", "redis_backend_results.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		var fx struct {
			Messages []struct {
				Body *string `json:"body"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(data, &fx); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		f.Add(encodeOutput(f, []string{name}, compact.Bytes()))
		for _, m := range fx.Messages {
			if m.Body != nil {
				f.Add(encodeOutput(f, nil, json.RawMessage(*m.Body)))
			}
		}
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		sent, report, err := parseOutput(out)
		if err != nil {
			var oe *outputError
			if !errors.As(err, &oe) && !errors.Is(err, errNoReport) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if oe != nil && oe.Line < 1 {
				t.Fatalf("error on line %d", oe.Line)
			}
			if report != nil {
				t.Fatalf("a report came with the error %v", err)
			}
			return
		}
		if !json.Valid(report) || bytes.Equal(report, []byte("null")) {
			t.Fatalf("accepted report %q", report)
		}
		for _, id := range sent {
			if id == "" {
				t.Fatal("accepted an empty id")
			}
		}
		sent2, report2, err := parseOutput(encodeOutput(t, sent, report))
		if err != nil {
			t.Fatalf("re-encoded output rejected: %v", err)
		}
		if !reflect.DeepEqual(sent, sent2) || !bytes.Equal(report, report2) {
			t.Fatalf("round trip: %q %s became %q %s", sent, report, sent2, report2)
		}
	})
}
