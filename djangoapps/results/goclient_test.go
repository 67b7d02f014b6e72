package results_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/broker/memorybroker"
	"github.com/forumads/forumads/djangoapps/results"
)

// TestGoClientGetPollsTheRow: a Go client's AsyncResult.Get on the django-db backend waits (by
// polling) for the Go worker's row; the row carries the request's argsrepr as task_args and its
// periodic_task_name header, and Get reads them back.
func TestGoClientGetPollsTheRow(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	b := results.New(s.DB, results.Options{PollInterval: 50 * time.Millisecond})
	cfg := celery.Config{BrokerURL: "memory://", ResultBackend: "django-db", ResultExtended: true, WorkerConcurrency: 1}
	br := memorybroker.New()
	t.Cleanup(func() { _ = br.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := celery.NewWorker(celery.WorkerOptions{Config: cfg, Registry: djrTasks(), Broker: br, Backend: b,
		Hostname: "celery@djr-client", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, celery.ErrWorkerClosed) {
			t.Errorf("Run: %v", err)
		}
	})
	c, err := celery.NewClient(celery.ClientOptions{Config: cfg, Broker: br, Backend: b, Registry: djrTasks()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.SendTask(ctx(t), "djr.add", []any{2, 3}, nil, celery.WithHeaders(map[string]any{"periodic_task_name": "nightly-add"}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := res.Get(ctx(t))
	if err != nil || string(got) != "5" {
		t.Fatalf("Get = %s, %v; want 5", got, err)
	}
	var row struct {
		TaskArgs         string `db:"task_args"`
		TaskKwargs       string `db:"task_kwargs"`
		PeriodicTaskName string `db:"periodic_task_name"`
		Worker           string `db:"worker"`
	}
	if err := s.DB.Get(&row, `SELECT task_args, task_kwargs, periodic_task_name, worker FROM django_celery_results_taskresult WHERE task_id = $1`, res.ID); err != nil {
		t.Fatal(err)
	}
	if row.TaskArgs != `"(2, 3)"` || row.TaskKwargs != `"{}"` || row.PeriodicTaskName != "nightly-add" || row.Worker != "celery@djr-client" {
		t.Errorf("row %+v; want task_args \"(2, 3)\", task_kwargs \"{}\", periodic_task_name nightly-add", row)
	}
	m, err := b.Get(ctx(t), res.ID)
	if err != nil || m.Extended == nil || m.Extended.ArgsRepr != "(2, 3)" || m.Extended.PeriodicTaskName != "nightly-add" ||
		m.Extended.Name != "djr.add" {
		t.Errorf("Get = %+v (%+v), %v", m, m.Extended, err)
	}
}
