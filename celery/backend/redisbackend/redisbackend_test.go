package redisbackend

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/forumads/forumads/celery/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisURL is REDIS_URL, default redis://127.0.0.1:6379/0.
func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// newClient connects to the test Redis and fails the test if it is not there.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		tb.Fatalf("bad REDIS_URL %q: %v", redisURL(), err)
	}
	c := redis.NewClient(opts)
	tb.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("Redis is required at %s (set REDIS_URL): %v", redisURL(), err)
	}
	return c
}

// newUUID returns a random version 4 UUID, the shape of a Celery task id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newBackend returns a Backend with a unique key prefix whose keys are
// deleted when the test ends.
func newBackend(tb testing.TB, expires time.Duration) (*Backend, *redis.Client, string) {
	tb.Helper()
	c := newClient(tb)
	prefix := "redisbackend-test-" + newUUID() + ":"
	tb.Cleanup(func() { deletePrefix(tb, c, prefix) })
	return New(c, Options{Expires: expires, KeyPrefix: prefix}), c, prefix
}

// deletePrefix deletes every key starting with prefix.
func deletePrefix(tb testing.TB, c *redis.Client, prefix string) {
	tb.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := c.Del(ctx, iter.Val()).Err(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	}
	if err := iter.Err(); err != nil {
		tb.Errorf("cleanup scan: %v", err)
	}
}

var testDone = time.Date(2026, 11, 25, 18, 11, 56, 863107000, time.UTC)

func successMeta(id string, result string) protocol.ResultMeta {
	return protocol.ResultMeta{Status: protocol.StateSuccess, Result: json.RawMessage(result), DateDone: &testDone, TaskID: id}
}

func exceptionMeta(id, state, typ, module string, msg ...any) protocol.ResultMeta {
	m := protocol.ResultMeta{
		Status: state,
		Result: protocol.ExceptionResult(protocol.ExceptionInfo{Type: typ, Module: module, Message: msg}),
		TaskID: id,
	}
	if protocol.IsReady(state) {
		m.DateDone = &testDone
	}
	return m
}

func mustMarshal(tb testing.TB, m protocol.ResultMeta) string {
	tb.Helper()
	b, err := m.MarshalJSON()
	if err != nil {
		tb.Fatalf("MarshalJSON: %v", err)
	}
	return string(b)
}

func TestTaskKey(t *testing.T) {
	tests := []struct{ prefix, id, want string }{
		{"", "b0d117a9-9f4d-4342-aff0-095405b4b2f1", "celery-task-meta-b0d117a9-9f4d-4342-aff0-095405b4b2f1"},
		{"p_", "x", "p_celery-task-meta-x"},
		{"", "", "celery-task-meta-"},
	}
	for _, tt := range tests {
		if got := TaskKey(tt.prefix, tt.id); got != tt.want {
			t.Errorf("TaskKey(%q, %q) = %q, want %q", tt.prefix, tt.id, got, tt.want)
		}
	}
}

func TestStoreGet(t *testing.T) {
	b, c, prefix := newBackend(t, 24*time.Hour)
	ctx := context.Background()
	tests := []struct {
		name string
		meta protocol.ResultMeta
	}{
		{"success int", successMeta("", `5`)},
		{"success nested", successMeta("", `{"a":[1,"é",null],"big":123456789012345678901}`)},
		{"started", protocol.ResultMeta{Status: protocol.StateStarted, Result: json.RawMessage(`{"pid":1,"hostname":"celery@go"}`)}},
		{"custom state", protocol.ResultMeta{Status: "PROGRESS", Result: json.RawMessage(`{"done":3,"total":10}`)}},
		{"retry", exceptionMeta("", protocol.StateRetry, "RuntimeError", "builtins", "again")},
		{"failure", exceptionMeta("", protocol.StateFailure, "DivisionError", "go.diag", "boom")},
		{"revoked", exceptionMeta("", protocol.StateRevoked, "TaskRevokedError", "celery.exceptions", "revoked")},
		{"extended", protocol.ResultMeta{Status: protocol.StateSuccess, Result: json.RawMessage(`1`), DateDone: &testDone,
			GroupID: "g", ParentID: "p", Extended: &protocol.ExtendedMeta{Name: "tasks.add", Args: json.RawMessage(`[1]`),
				Kwargs: json.RawMessage(`{}`), Worker: "celery@go", Retries: 1, Queue: "celery"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := tt.meta
			meta.TaskID = newUUID()
			if err := b.Store(ctx, meta); err != nil {
				t.Fatalf("Store: %v", err)
			}
			raw, err := c.Get(ctx, prefix+"celery-task-meta-"+meta.TaskID).Result()
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			if want := mustMarshal(t, meta); raw != want {
				t.Errorf("stored bytes\n got: %s\nwant: %s", raw, want)
			}
			got, err := b.Get(ctx, meta.TaskID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if mustMarshal(t, got) != raw {
				t.Errorf("Get gave %+v, which does not re-encode to %s", got, raw)
			}
		})
	}
}

func TestGetMissingIsPending(t *testing.T) {
	b, c, prefix := newBackend(t, 0)
	ctx := context.Background()
	id := newUUID()
	got, err := b.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Status != protocol.StatePending || got.TaskID != id || got.Result != nil || got.DateDone != nil {
		t.Errorf("got %+v, want PENDING", got)
	}
	// An empty value reads as PENDING too, as for Python ("if not meta").
	if err := c.Set(ctx, prefix+"celery-task-meta-"+id, "", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err = b.Get(ctx, id); err != nil || got.Status != protocol.StatePending {
		t.Errorf("empty value: got %+v, %v", got, err)
	}
}

func TestGetCorruptValue(t *testing.T) {
	b, c, prefix := newBackend(t, 0)
	ctx := context.Background()
	id := newUUID()
	if err := c.Set(ctx, prefix+"celery-task-meta-"+id, "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := b.Get(ctx, id)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("want a *json.SyntaxError, got %T %v", err, err)
	}
}

func TestStoreNeverOverwritesSuccess(t *testing.T) {
	b, c, prefix := newBackend(t, 0)
	ctx := context.Background()
	pythonSuccess := `{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-11-25T18:11:56.863107", "task_id": "x"}`
	tests := []struct {
		name      string
		first     string // raw value stored first; "" for none
		second    protocol.ResultMeta
		overwrite bool
	}{
		{"nothing stored", "", successMeta("", `1`), true},
		{"STARTED then SUCCESS", `{"status": "STARTED", "result": {"pid": 1, "hostname": "h"}}`, successMeta("", `1`), true},
		{"RETRY then SUCCESS", `{"status": "RETRY", "result": null}`, successMeta("", `1`), true},
		{"RETRY then RETRY", `{"status": "RETRY", "result": null}`, exceptionMeta("", protocol.StateRetry, "E", "m"), true},
		{"FAILURE then SUCCESS", `{"status": "FAILURE", "result": null}`, successMeta("", `1`), true},
		{"REVOKED then STARTED", `{"status": "REVOKED", "result": null}`, protocol.ResultMeta{Status: protocol.StateStarted}, true},
		{"corrupt value is replaced", `garbage`, successMeta("", `1`), true},
		{"SUCCESS then FAILURE", pythonSuccess, exceptionMeta("", protocol.StateFailure, "E", "m"), false},
		{"SUCCESS then SUCCESS", pythonSuccess, successMeta("", `2`), false},
		{"SUCCESS then STARTED", pythonSuccess, protocol.ResultMeta{Status: protocol.StateStarted}, false},
		{"compact SUCCESS", `{"status":"SUCCESS","result":1}`, successMeta("", `2`), false},
		{"deeply nested SUCCESS cjson cannot read", `{"status": "SUCCESS", "result": ` + nested(2000) + `}`, successMeta("", `2`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := newUUID()
			key := prefix + "celery-task-meta-" + id
			if tt.first != "" {
				if err := c.Set(ctx, key, tt.first, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			second := tt.second
			second.TaskID = id
			err := b.Store(ctx, second)
			got, gerr := c.Get(ctx, key).Result()
			if gerr != nil {
				t.Fatalf("GET: %v", gerr)
			}
			if tt.overwrite {
				if err != nil {
					t.Fatalf("Store: %v", err)
				}
				if want := mustMarshal(t, second); got != want {
					t.Errorf("stored %s, want %s", got, want)
				}
				return
			}
			if !errors.Is(err, ErrAlreadySucceeded) {
				t.Fatalf("Store error = %v, want ErrAlreadySucceeded", err)
			}
			var se *StoreError
			if !errors.As(err, &se) || se.TaskID != id {
				t.Errorf("want *StoreError for %s, got %#v", id, err)
			}
			if got != tt.first {
				t.Errorf("SUCCESS was overwritten with %s", got)
			}
		})
	}
}

func nested(depth int) string {
	b := make([]byte, 0, 2*depth)
	for range depth {
		b = append(b, '[')
	}
	for range depth {
		b = append(b, ']')
	}
	return string(b)
}

func TestStorePublishes(t *testing.T) {
	b, c, prefix := newBackend(t, 0)
	ctx := context.Background()
	id := newUUID()
	channel := prefix + "celery-task-meta-" + id
	ps := c.Subscribe(ctx, channel)
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	started := protocol.ResultMeta{Status: protocol.StateStarted, Result: json.RawMessage(`{"pid":1,"hostname":"h"}`), TaskID: id}
	success := successMeta(id, `5`)
	failure := exceptionMeta(id, protocol.StateFailure, "E", "m")
	if err := b.Store(ctx, started); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(ctx, success); err != nil {
		t.Fatal(err)
	}
	if err := b.Store(ctx, failure); !errors.Is(err, ErrAlreadySucceeded) {
		t.Fatalf("Store over SUCCESS: %v", err)
	}
	// A marker published last shows that the skipped FAILURE published
	// nothing: channel messages arrive in order.
	if err := c.Publish(ctx, channel, "marker").Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{mustMarshal(t, started), mustMarshal(t, success), "marker"} {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if msg.Payload != want {
			t.Errorf("published %s, want %s", msg.Payload, want)
		}
	}
}

func TestStoreExpires(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		expires time.Duration
		want    time.Duration // -1: no TTL
	}{
		{"Celery default", 24 * time.Hour, 24 * time.Hour},
		{"whole seconds", 90 * time.Second, 90 * time.Second},
		{"fraction truncated like Python's int()", 2500 * time.Millisecond, 2 * time.Second},
		{"below a second is one second", time.Millisecond, time.Second},
		{"zero never expires", 0, -1},
		{"negative never expires", -time.Second, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, c, prefix := newBackend(t, tt.expires)
			id := newUUID()
			before := serverNow(t, c)
			if err := b.Store(ctx, successMeta(id, `1`)); err != nil {
				t.Fatal(err)
			}
			after := serverNow(t, c)
			// PEXPIRETIME is absolute, so the check does not depend on how
			// long the test took: the key must expire exactly want after
			// some moment of the Store call.
			exp, err := c.Do(ctx, "PEXPIRETIME", prefix+"celery-task-meta-"+id).Int64()
			if err != nil {
				t.Fatalf("PEXPIRETIME: %v", err)
			}
			if tt.want < 0 {
				if exp != -1 {
					t.Errorf("PEXPIRETIME = %d, want -1 (no TTL)", exp)
				}
				return
			}
			lo, hi := before.Add(tt.want).UnixMilli(), after.Add(tt.want).UnixMilli()
			if exp < lo || exp > hi {
				t.Errorf("expires at %d ms, want within [%d, %d] (TTL %v)", exp, lo, hi, tt.want)
			}
		})
	}
}

// serverNow is Redis's clock.
func serverNow(t *testing.T, c *redis.Client) time.Time {
	t.Helper()
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func TestStoreInvalid(t *testing.T) {
	b, c, prefix := newBackend(t, 0)
	ctx := context.Background()
	tests := []struct {
		name    string
		meta    protocol.ResultMeta
		maxSize int
		check   func(error) bool
	}{
		{"empty task id", protocol.ResultMeta{Status: protocol.StateSuccess}, 0,
			func(err error) bool { return errors.Is(err, ErrInvalidMeta) }},
		{"empty status", protocol.ResultMeta{TaskID: newUUID()}, 0,
			func(err error) bool { return errors.Is(err, ErrInvalidMeta) }},
		{"result not JSON", protocol.ResultMeta{Status: protocol.StateSuccess, TaskID: newUUID(), Result: json.RawMessage(`{`)}, 0,
			func(err error) bool { var se *json.SyntaxError; return errors.As(err, &se) }},
		{"too large", successMeta(newUUID(), `"`+strings.Repeat("x", 64)+`"`), 64,
			func(err error) bool { return errors.Is(err, ErrValueTooLarge) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bb := *b
			if tt.maxSize > 0 {
				bb.maxSize = tt.maxSize
			}
			err := bb.Store(ctx, tt.meta)
			if !tt.check(err) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			var se *StoreError
			if !errors.As(err, &se) || se.TaskID != tt.meta.TaskID {
				t.Errorf("want *StoreError naming %q, got %v", tt.meta.TaskID, err)
			}
			if tt.meta.TaskID != "" {
				if n, _ := c.Exists(ctx, prefix+"celery-task-meta-"+tt.meta.TaskID).Result(); n != 0 {
					t.Errorf("invalid meta was stored")
				}
			}
		})
	}
}

func TestStoreStampsDateDone(t *testing.T) {
	b, _, _ := newBackend(t, 0)
	ctx := context.Background()
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("X", 3600))
	b.now = func() time.Time { return fixed }
	tests := []struct {
		state string
		want  *time.Time
	}{
		{protocol.StateSuccess, &fixed},
		{protocol.StateFailure, &fixed},
		{protocol.StateRevoked, &fixed},
		{protocol.StateStarted, nil},
		{protocol.StateRetry, nil},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			id := newUUID()
			if err := b.Store(ctx, protocol.ResultMeta{Status: tt.state, TaskID: id}); err != nil {
				t.Fatal(err)
			}
			got, err := b.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if (got.DateDone == nil) != (tt.want == nil) || (got.DateDone != nil && !got.DateDone.Equal(*tt.want)) {
				t.Errorf("DateDone = %v, want %v", got.DateDone, tt.want)
			}
		})
	}
}

func TestStoreMany(t *testing.T) {
	b, c, prefix := newBackend(t, time.Hour)
	ctx := context.Background()
	for _, flush := range []bool{false, true} {
		t.Run(fmt.Sprintf("script cache flushed=%v", flush), func(t *testing.T) {
			done, twice, blocked := newUUID(), newUUID(), newUUID()
			if err := c.Set(ctx, prefix+"celery-task-meta-"+blocked, `{"status": "SUCCESS", "result": 0}`, 0).Err(); err != nil {
				t.Fatal(err)
			}
			metas := []protocol.ResultMeta{
				successMeta(done, `1`),
				{Status: protocol.StateStarted, TaskID: twice},
				successMeta(twice, `2`),
				exceptionMeta(twice, protocol.StateFailure, "E", "m"), // after SUCCESS: skipped
				successMeta(blocked, `3`),                             // skipped
				{Status: protocol.StateSuccess},                       // invalid
			}
			if flush {
				// Forces the NOSCRIPT path; go-redis clients fall back to
				// EVAL, so other users of this Redis are not affected.
				if err := c.ScriptFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			err := b.StoreMany(ctx, metas)
			var skipped []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var se *StoreError
				if !errors.As(e, &se) {
					t.Fatalf("not a *StoreError: %v", e)
				}
				switch {
				case errors.Is(se, ErrAlreadySucceeded):
					skipped = append(skipped, se.TaskID)
				case errors.Is(se, ErrInvalidMeta) && se.TaskID == "":
				default:
					t.Errorf("unexpected error %v", se)
				}
			}
			if len(skipped) != 2 || !contains(skipped, twice) || !contains(skipped, blocked) {
				t.Errorf("skipped %v, want %s and %s", skipped, twice, blocked)
			}
			for id, want := range map[string]string{done: `1`, twice: `2`, blocked: `0`} {
				got, err := b.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != protocol.StateSuccess || string(got.Result) != want {
					t.Errorf("%s: got %s %s, want SUCCESS %s", id, got.Status, got.Result, want)
				}
			}
			if ttl, err := c.TTL(ctx, prefix+"celery-task-meta-"+done).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
				t.Errorf("TTL = %v, %v; want at most 1h", ttl, err)
			}
		})
	}
	if err := b.StoreMany(ctx, nil); err != nil {
		t.Errorf("StoreMany(nil) = %v", err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestStoreFlushedScriptCache(t *testing.T) {
	b, c, _ := newBackend(t, 0)
	ctx := context.Background()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	id := newUUID()
	if err := b.Store(ctx, successMeta(id, `7`)); err != nil {
		t.Fatalf("Store after SCRIPT FLUSH: %v", err)
	}
	if got, err := b.Get(ctx, id); err != nil || string(got.Result) != "7" {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestKeyPrefixIsolates(t *testing.T) {
	a, c, prefixA := newBackend(t, 0)
	bb, _, _ := newBackend(t, 0)
	ctx := context.Background()
	id := newUUID()
	if err := a.Store(ctx, successMeta(id, `1`)); err != nil {
		t.Fatal(err)
	}
	got, err := bb.Get(ctx, id)
	if err != nil || got.Status != protocol.StatePending {
		t.Errorf("other prefix sees %+v, %v; want PENDING", got, err)
	}
	if n, err := c.Exists(ctx, "celery-task-meta-"+id).Result(); err != nil || n != 0 {
		t.Errorf("unprefixed key exists: %d %v", n, err)
	}
	if n, err := c.Exists(ctx, prefixA+"celery-task-meta-"+id).Result(); err != nil || n != 1 {
		t.Errorf("prefixed key missing: %d %v", n, err)
	}
	if err := bb.Forget(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, id); err != nil || got.Status != protocol.StateSuccess {
		t.Errorf("Forget on another prefix removed the result: %+v %v", got, err)
	}
}

func TestForget(t *testing.T) {
	b, _, _ := newBackend(t, 0)
	ctx := context.Background()
	id := newUUID()
	if err := b.Store(ctx, successMeta(id, `1`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Forget(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, id); err != nil || got.Status != protocol.StatePending {
		t.Errorf("after Forget: %+v, %v", got, err)
	}
	// Forgetting makes room for a new SUCCESS.
	if err := b.Store(ctx, successMeta(id, `2`)); err != nil {
		t.Errorf("Store after Forget: %v", err)
	}
}

func TestPing(t *testing.T) {
	b, _, _ := newBackend(t, 0)
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1}), Options{})
	defer closed.client.Close()
	if err := closed.Ping(context.Background()); err == nil {
		t.Error("Ping of a closed port succeeded")
	}
}

func TestWait(t *testing.T) {
	ctx := context.Background()
	started := protocol.ResultMeta{Status: protocol.StateStarted, Result: json.RawMessage(`{"pid":1,"hostname":"h"}`)}
	retry := exceptionMeta("", protocol.StateRetry, "RuntimeError", "builtins", "again")
	progress := protocol.ResultMeta{Status: "PROGRESS", Result: json.RawMessage(`{"done":1}`)}
	tests := []struct {
		name   string
		before []protocol.ResultMeta // stored before Wait starts
		after  []protocol.ResultMeta // stored once Wait has read the key
		want   string                // final status
	}{
		{"already done", []protocol.ResultMeta{successMeta("", `1`)}, nil, protocol.StateSuccess},
		{"woken by SUCCESS", nil, []protocol.ResultMeta{successMeta("", `1`)}, protocol.StateSuccess},
		{"not-ready states do not end it", []protocol.ResultMeta{started},
			[]protocol.ResultMeta{retry, progress, started, exceptionMeta("", protocol.StateFailure, "E", "m", "x")}, protocol.StateFailure},
		{"REVOKED is ready", nil, []protocol.ResultMeta{exceptionMeta("", protocol.StateRevoked, "TaskRevokedError", "celery.exceptions", "revoked")},
			protocol.StateRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, _ := newBackend(t, 0)
			id := newUUID()
			for _, m := range tt.before {
				m.TaskID = id
				if err := b.Store(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			storeErr := make(chan error, 1)
			b.afterInitialGet = func() {
				go func() {
					for _, m := range tt.after {
						m.TaskID = id
						if err := b.Store(ctx, m); err != nil {
							storeErr <- err
							return
						}
					}
					storeErr <- nil
				}()
			}
			got, err := b.Wait(ctx, id)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if got.Status != tt.want || got.TaskID != id {
				t.Errorf("Wait = %s %s, want %s", got.Status, got.TaskID, tt.want)
			}
			if err := <-storeErr; err != nil {
				t.Errorf("Store: %v", err)
			}
		})
	}
}

func TestWaitCanceled(t *testing.T) {
	b, _, _ := newBackend(t, 0)
	id := newUUID()
	if err := b.Store(context.Background(), protocol.ResultMeta{Status: protocol.StateStarted, TaskID: id}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.afterInitialGet = cancel
	got, err := b.Wait(ctx, id)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait error = %v, want context.Canceled", err)
	}
	if got.Status != protocol.StateStarted {
		t.Errorf("Wait returned %s, want the last seen state STARTED", got.Status)
	}
}

func TestWaitCanceledBeforeStart(t *testing.T) {
	b, _, _ := newBackend(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Wait(ctx, newUUID()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait error = %v, want context.Canceled", err)
	}
}

func TestWaitCorruptPublish(t *testing.T) {
	b, c, prefix := newBackend(t, 0)
	id := newUUID()
	ctx := context.Background()
	b.afterInitialGet = func() {
		_ = c.Publish(ctx, prefix+"celery-task-meta-"+id, "{oops").Err()
	}
	_, err := b.Wait(ctx, id)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("want *json.SyntaxError, got %T %v", err, err)
	}
}

func BenchmarkStore(b *testing.B) {
	be, _, _ := newBackend(b, time.Hour)
	ctx := context.Background()
	meta := protocol.ResultMeta{
		Status: protocol.StateStarted,
		Result: json.RawMessage(`{"pid": 4242, "hostname": "celery@bench"}`),
		TaskID: newUUID(),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := be.Store(ctx, meta); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreMany(b *testing.B) {
	be, _, _ := newBackend(b, time.Hour)
	ctx := context.Background()
	metas := make([]protocol.ResultMeta, 100)
	for i := range metas {
		metas[i] = protocol.ResultMeta{Status: protocol.StateStarted, Result: json.RawMessage(`{"pid": 1}`), TaskID: newUUID()}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := be.StoreMany(ctx, metas); err != nil {
			b.Fatal(err)
		}
	}
}
