package wiring

import (
	"strings"
	"testing"

	"github.com/forumads/forumads/celery"
)

func TestRedacted(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"amqp://guest:secret@127.0.0.1:5672//": "amqp://guest:**@127.0.0.1:5672//",
		"redis://:pw@r:6379/0":                 "redis://:**@r:6379/0",
		"redis://127.0.0.1:6379/0":             "redis://127.0.0.1:6379/0",
		"amqp://user@h//":                      "amqp://user@h//",
	} {
		if got := Redacted(in); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackendSchemes(t *testing.T) {
	t.Parallel()
	b, rc, err := Backend(celery.Config{})
	if b != nil || rc != nil || err != nil {
		t.Fatal("no result_backend must mean no backend")
	}
	if _, _, err := Backend(celery.Config{ResultBackend: "rpc://"}); err == nil || !strings.Contains(err.Error(), "rpc") {
		t.Fatalf("rpc:// must be refused clearly: %v", err)
	}
	b, rc, err = Backend(celery.Config{ResultBackend: "redis://127.0.0.1:6379/3"})
	if err != nil || b == nil || rc == nil || rc.Options().DB != 3 {
		t.Fatalf("redis backend: %v", err)
	}
	_ = rc.Close()
}
