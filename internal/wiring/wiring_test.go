package wiring

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/protocol"
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
	b, closer, err := Backend(celery.Config{})
	if b != nil || closer != nil || err != nil {
		t.Fatal("no result_backend must mean no backend")
	}
	for _, tc := range []struct {
		url      string
		want     string // the adapter's type, or "" for an error
		errParts []string
	}{
		{url: "redis://127.0.0.1:6379/3", want: "*redisbackend.Backend"},
		{url: "rediss://127.0.0.1:6380/0", want: "*redisbackend.Backend"},
		{url: "unix:///tmp/redis.sock?db=2", want: "*redisbackend.Backend"},
		{url: "memory://", want: "*memorybackend.Backend"},
		{url: "sentinel://127.0.0.1:26379", errParts: []string{"sentinel", "not available yet"}},
		{url: "django-db", errParts: []string{"django-db", "not supported"}},
		{url: "db+postgresql://u@127.0.0.1/x", errParts: []string{"db+postgresql", "not supported"}},
		{url: "rpc://", errParts: []string{`"rpc"`, "not supported"}},
		{url: "mongodb://127.0.0.1/x", errParts: []string{`"mongodb"`, "not supported"}},
		{url: "127.0.0.1:6379", errParts: []string{"not supported"}},
		{url: "redis://127.0.0.1:6379/notadb", errParts: []string{"result_backend", "redis url"}},
	} {
		b, closer, err := Backend(celery.Config{ResultBackend: tc.url})
		if tc.want == "" {
			if err == nil || b != nil || closer != nil {
				t.Errorf("%s: backend %T, closer %v, err %v; want an error", tc.url, b, closer, err)
				continue
			}
			for _, p := range tc.errParts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("%s: error %q does not say %q", tc.url, err, p)
				}
			}
			continue
		}
		if err != nil || fmt.Sprintf("%T", b) != tc.want {
			t.Errorf("%s: backend %T, %v; want %s", tc.url, b, err, tc.want)
		}
		if closer != nil {
			_ = closer.Close()
		}
	}
	_, rc, err := Backend(celery.Config{ResultBackend: "redis://127.0.0.1:6379/3"})
	if err != nil || rc.(*redis.Client).Options().DB != 3 {
		t.Fatalf("redis backend: %v", err)
	}
	_ = rc.Close()
	// memory:// is one backend per process: what one part stores, another reads.
	m1, _, _ := Backend(celery.Config{ResultBackend: "memory://"})
	m2, _, _ := Backend(celery.Config{ResultBackend: "memory://"})
	ctx := context.Background()
	if err := m1.Store(ctx, protocol.ResultMeta{TaskID: "wiring-shared", Status: protocol.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Get(ctx, "wiring-shared"); err != nil || got.Status != protocol.StateSuccess {
		t.Fatalf("a second memory:// backend read %+v, %v; want the first one's SUCCESS", got, err)
	}
}
