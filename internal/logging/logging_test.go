package logging

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"testing/slogtest"
)

func TestCeleryLineFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, slog.LevelInfo, "MainProcess"))
	log.Info("Task diag.add[abc] succeeded in 0.001000s: 5", "task_id", "abc", "note", "two words")
	log.Debug("hidden")
	line := buf.String()
	re := regexp.MustCompile(`^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: INFO/MainProcess\] Task diag\.add\[abc\] succeeded in 0\.001000s: 5 task_id=abc note="two words"\n$`)
	if !re.MatchString(line) {
		t.Fatalf("line %q does not have Celery's format", line)
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"info", slog.LevelInfo, true}, {"WARNING", slog.LevelWarn, true}, {"debug", slog.LevelDebug, true},
		{"CRITICAL", slog.LevelError, true}, {"", slog.LevelInfo, true}, {"loud", 0, false},
	} {
		got, err := ParseLevel(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseLevel(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestSlogConformance runs the standard library's handler test over a parse of our line format.
func TestSlogConformance(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := NewHandler(&buf, slog.LevelDebug, "MainProcess")
	results := func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
			if line == "" {
				continue
			}
			m := map[string]any{}
			head, rest, _ := strings.Cut(line, "] ")
			if regexp.MustCompile(`^\[\d{4}-`).MatchString(head) {
				m[slog.TimeKey] = head
			}
			m[slog.LevelKey] = head
			fields := regexp.MustCompile(` ([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)`).FindAllStringSubmatchIndex(rest, -1)
			msgEnd := len(rest)
			if len(fields) > 0 {
				msgEnd = fields[0][0]
			}
			m[slog.MessageKey] = rest[:msgEnd]
			for _, f := range fields {
				key, val := rest[f[2]:f[3]], strings.Trim(rest[f[4]:f[5]], `"`)
				parts := strings.Split(key, ".")
				cur := m
				for _, p := range parts[:len(parts)-1] {
					sub, ok := cur[p].(map[string]any)
					if !ok {
						sub = map[string]any{}
						cur[p] = sub
					}
					cur = sub
				}
				cur[parts[len(parts)-1]] = val
			}
			out = append(out, m)
		}
		return out
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		t.Fatal(err)
	}
}
