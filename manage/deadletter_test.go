package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/amqpwire"
	"github.com/forumads/forumads/internal/config"
	"github.com/forumads/forumads/internal/testenv"
)

// dlSetup is a test's own dead-letter queue and original queue, deleted at cleanup.
type dlSetup struct {
	dlq, orig string
	ch        *amqp.Channel
}

func newDLSetup(t *testing.T) dlSetup {
	t.Helper()
	s := dlSetup{dlq: testenv.Name(t, "dlq"), orig: testenv.Name(t, "orig")}
	testenv.DeleteQueuesAtCleanup(t, s.dlq, s.orig)
	// Through amqpwire, as the command reads: a replayed int64 header comes back as py-amqp's 'L'.
	conn, err := amqp.DialConfig(testenv.AMQPURL(), amqp.Config{Dial: amqpwire.Dialer(nil, amqpwire.Options{})})
	if err != nil {
		t.Fatalf("RabbitMQ is required at %s (run scripts/services.sh): %v", testenv.AMQPURL(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	s.ch = ch
	for _, q := range []string{s.dlq, s.orig} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// taskHeaders are the protocol-2 headers of a Celery message for task id.
func taskHeaders(id string) amqp.Table {
	return amqp.Table{
		"lang": "py", "task": "diag.add", "id": id, "root_id": id, "parent_id": nil, "group": nil,
		"retries": int32(2), "big": int64(1) << 40, "timelimit": []any{nil, int32(30)},
		"argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen1@host",
		"nested": amqp.Table{"a": "b", "n": int32(-5)},
	}
}

// put publishes a dead letter of task id, as the worker writes it, coming from origQueue.
func (s dlSetup) put(t *testing.T, id, reason, origQueue string) {
	t.Helper()
	h := taskHeaders(id)
	h[celery.HeaderDeadLetterReason] = reason
	h[celery.HeaderOriginalQueue] = origQueue
	h[celery.HeaderOriginalExchange] = origQueue
	h[celery.HeaderOriginalKey] = origQueue
	h[celery.HeaderDeadLetteredBy] = "celery@test"
	h[celery.HeaderDeadLetteredAt] = "2026-11-25T18:40:01.120000+00:00"
	before := s.depth(t, s.dlq)
	err := s.ch.PublishWithContext(context.Background(), "", s.dlq, false, false, amqp.Publishing{
		Headers: h, ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent,
		CorrelationId: id, ReplyTo: "reply-" + id, Priority: 3, Body: body(id),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The publish is not confirmed: wait until the queue holds it, so that what the test does next
	// sees it.
	testenv.Eventually(t, 10*time.Second, func() bool { return s.depth(t, s.dlq) > before },
		"the message %s to arrive in %s", id, s.dlq)
}

// depth is how many messages are ready in queue.
func (s dlSetup) depth(t *testing.T, queue string) int {
	t.Helper()
	st, err := s.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

func body(id string) []byte { return []byte(`[[2, 3], {"id": "` + id + `"}, {"callbacks": null}]`) }

// drain takes (and acknowledges) every message of queue, in order.
func (s dlSetup) drain(t *testing.T, queue string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := s.ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// ids returns the id header of each message.
func ids(ds []amqp.Delivery) string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprint(d.Headers["id"]))
	}
	return strings.Join(out, ",")
}

// dlEnv is a manage environment against the test broker, its output in buffers.
func dlEnv(t *testing.T) (*env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	file, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	file.Celery.BrokerURL = testenv.AMQPURL()
	file.Celery = file.Celery.WithDefaults()
	var out, errb bytes.Buffer
	return &env{file: file, log: slog.New(slog.DiscardHandler), stdout: &out, stderr: &errb}, &out, &errb
}

func deadletter(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	e, out, errb := dlEnv(t)
	err := e.deadletter(context.Background(), args)
	return out.String(), errb.String(), err
}

func TestDeadLetterListLeavesQueueAsItWas(t *testing.T) {
	t.Parallel()
	s := newDLSetup(t)
	s.put(t, "id-a", `NotRegistered: task "x.y" is not registered on celery@h`, s.orig)
	s.put(t, "id-b", "InvalidTaskError: missing header task", s.orig)
	s.put(t, "id-c", "rejected by the task: line one\nline two", "other-queue")

	out, _, err := deadletter(t, "list", "--queue", s.dlq)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "REASON", "id-a", "diag.add", s.orig, "2026-11-25T18:40:01", `NotRegistered: task "x.y"`,
		"InvalidTaskError: missing header task", "rejected by the task: line one line two", "other-queue"} {
		if !strings.Contains(out, want) {
			t.Errorf("list does not show %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n") != 4 {
		t.Errorf("want a header and 3 lines:\n%s", out)
	}

	out, _, err = deadletter(t, "list", "--queue", s.dlq, "--json", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	var got []deadLetter
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	want := deadLetter{ID: "id-a", Task: "diag.add", Reason: `NotRegistered: task "x.y" is not registered on celery@h`,
		OriginalQueue: s.orig, OriginalExchange: s.orig, OriginalRoutingKey: s.orig,
		DeadLetteredAt: "2026-11-25T18:40:01.120000+00:00", DeadLetteredBy: "celery@test",
		ContentType: "application/json", BodyBytes: len(body("id-a"))}
	if len(got) != 2 || got[0] != want || got[1].ID != "id-b" {
		t.Errorf("--json --limit 2 = %+v, want 2 messages, the first %+v", got, want)
	}

	// Listing twice changed nothing: all three are still there, in order, with their headers.
	ds := s.drain(t, s.dlq)
	if ids(ds) != "id-a,id-b,id-c" {
		t.Fatalf("after list the queue holds %s, want id-a,id-b,id-c", ids(ds))
	}
	if ds[0].Headers[celery.HeaderDeadLetterReason] == nil || !bytes.Equal(ds[0].Body, body("id-a")) {
		t.Errorf("listed message changed: %v %s", ds[0].Headers, ds[0].Body)
	}
}

func TestDeadLetterListEmptyAndMissingQueue(t *testing.T) {
	t.Parallel()
	s := newDLSetup(t)
	out, _, err := deadletter(t, "list", "--queue", s.dlq, "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty queue --json: %q, %v", out, err)
	}
	out, _, err = deadletter(t, "list", "--queue", s.dlq)
	if err != nil || !strings.Contains(out, "(no messages)") {
		t.Errorf("empty queue: %q, %v", out, err)
	}
	_, _, err = deadletter(t, "list", "--queue", s.dlq+".missing")
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing queue: %v, want an error saying it does not exist", err)
	}
}

func TestDeadLetterReplay(t *testing.T) {
	t.Parallel()
	s := newDLSetup(t)
	other := testenv.Name(t, "other")
	testenv.DeleteQueuesAtCleanup(t, other)
	if _, err := s.ch.QueueDeclare(other, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"id-a", "id-b", "id-c"} {
		s.put(t, id, "NotRegistered: x", s.orig)
	}

	out, _, err := deadletter(t, "replay", "--queue", s.dlq, "--id", "id-b")
	if err != nil || !strings.Contains(out, "replayed id-b (diag.add) to "+s.orig) {
		t.Fatalf("replay --id id-b: %q, %v", out, err)
	}
	back := s.drain(t, s.orig)
	if len(back) != 1 {
		t.Fatalf("%d messages in the original queue, want 1", len(back))
	}
	d := back[0]
	if !reflect.DeepEqual(map[string]any(d.Headers), map[string]any(taskHeaders("id-b"))) {
		t.Errorf("replayed headers\n%v\nwant (the dead-letter ones removed)\n%v", d.Headers, taskHeaders("id-b"))
	}
	if !bytes.Equal(d.Body, body("id-b")) || d.ContentType != "application/json" || d.ContentEncoding != "utf-8" ||
		d.CorrelationId != "id-b" || d.ReplyTo != "reply-id-b" || d.Priority != 3 || d.DeliveryMode != amqp.Persistent {
		t.Errorf("replayed message differs: %+v", d)
	}

	// The others stay, in order; --all --to moves both elsewhere.
	out, _, err = deadletter(t, "replay", "--queue", s.dlq, "--all", "--to", other)
	if err != nil || strings.Count(out, "replayed") != 2 {
		t.Fatalf("replay --all --to: %q, %v", out, err)
	}
	if got := ids(s.drain(t, other)); got != "id-a,id-c" {
		t.Errorf("--to queue holds %s, want id-a,id-c", got)
	}
	if n := len(s.drain(t, s.dlq)); n != 0 {
		t.Errorf("%d messages left in the dead-letter queue", n)
	}
}

// TestDeadLetterReplayLosesNothing: a message whose original queue is gone is returned by the
// broker (mandatory publish) and stays in the dead-letter queue, unchanged and in place; the
// others are replayed; an id not in the queue is reported.
func TestDeadLetterReplayLosesNothing(t *testing.T) {
	t.Parallel()
	s := newDLSetup(t)
	gone := testenv.Name(t, "gone")
	s.put(t, "id-a", "NotRegistered: x", s.orig)
	s.put(t, "id-b", "NotRegistered: x", gone)
	s.put(t, "id-c", "NotRegistered: x", s.orig)
	// A message without x-original-queue cannot be replayed without --to.
	if err := s.ch.PublishWithContext(context.Background(), "", s.dlq, false, false, amqp.Publishing{
		Headers: amqp.Table{"id": "id-d", "task": "diag.add"}, Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}

	out, _, err := deadletter(t, "replay", "--queue", s.dlq, "--all")
	if err == nil || !strings.Contains(err.Error(), "id-b") || !strings.Contains(err.Error(), gone) ||
		!strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "id-d") {
		t.Fatalf("replay with a missing queue: %v, want an error naming id-b, %s and id-d", err, gone)
	}
	if got := ids(s.drain(t, s.orig)); got != "id-a,id-c" || strings.Count(out, "replayed") != 2 {
		t.Errorf("original queue holds %s (output %q), want id-a,id-c", got, out)
	}
	left := s.drain(t, s.dlq)
	if ids(left) != "id-b,id-d" {
		t.Fatalf("dead-letter queue holds %s, want id-b,id-d", ids(left))
	}
	if left[0].Headers[celery.HeaderOriginalQueue] != gone || !bytes.Equal(left[0].Body, body("id-b")) {
		t.Errorf("the message left behind changed: %v %s", left[0].Headers, left[0].Body)
	}

	s.put(t, "id-e", "NotRegistered: x", s.orig)
	_, _, err = deadletter(t, "replay", "--queue", s.dlq, "--id", "id-e,no-such-id")
	if err == nil || !strings.Contains(err.Error(), "no-such-id") {
		t.Errorf("replay of an id not in the queue: %v, want an error naming it", err)
	}
	if got := ids(s.drain(t, s.orig)); got != "id-e" {
		t.Errorf("the id that was there was not replayed: %s", got)
	}
}

func TestDeadLetterPurge(t *testing.T) {
	t.Parallel()
	s := newDLSetup(t)
	for _, id := range []string{"id-a", "id-b", "id-c", "id-d"} {
		s.put(t, id, "NotRegistered: x", s.orig)
	}
	var ue usageError
	if _, _, err := deadletter(t, "purge", "--queue", s.dlq, "--id", "id-b"); !errors.As(err, &ue) {
		t.Fatalf("purge without --yes: %v, want a usage error", err)
	}
	out, _, err := deadletter(t, "purge", "--queue", s.dlq, "--yes", "id-b", "--id", "id-d")
	if err != nil || !strings.Contains(out, "deleted id-b") || !strings.Contains(out, "deleted id-d") {
		t.Fatalf("purge id-b id-d: %q, %v", out, err)
	}
	out, _, err = deadletter(t, "list", "--queue", s.dlq, "--json")
	var got []deadLetter
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got) != 2 || got[0].ID != "id-a" || got[1].ID != "id-c" {
		t.Fatalf("after purging id-b and id-d: %s (%v)", out, err)
	}
	_, errs, err := deadletter(t, "purge", "--queue", s.dlq, "--all", "--yes")
	if err != nil || !strings.Contains(errs, "2 message(s) deleted") {
		t.Fatalf("purge --all: %q, %v", errs, err)
	}
	if n := len(s.drain(t, s.dlq)); n != 0 {
		t.Errorf("%d messages left after purge --all", n)
	}
}

// TestDeadLetterUsage: command-line mistakes are usage errors (exit 2) found before connecting.
func TestDeadLetterUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "list, replay or purge"},
		{"unknown subcommand", []string{"show"}, `unknown subcommand "show"`},
		{"replay without selection", []string{"replay"}, "--id"},
		{"replay both", []string{"replay", "--all", "--id", "x"}, "not both"},
		{"purge without yes", []string{"purge", "--all"}, "--yes"},
		{"negative limit", []string{"list", "--limit", "-1"}, "--limit"},
		{"list arguments", []string{"list", "extra"}, "unexpected arguments"},
		{"empty queue name", []string{"list", "--queue", ""}, "--queue is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _, _ := dlEnv(t)
			e.file.Celery.BrokerURL = "amqp://guest:guest@127.0.0.1:1/" // never reached
			err := e.deadletter(context.Background(), tc.args)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("deadletter %q = %v, want a usage error mentioning %q", tc.args, err, tc.want)
			}
		})
	}
	e, _, _ := dlEnv(t)
	if err := e.deadletter(context.Background(), []string{"replay", "--queue", "q", "--all", "--to", "q"}); err == nil ||
		!strings.Contains(err.Error(), "dead-letter queue itself") {
		t.Errorf("replay --to the dead-letter queue: %v", err)
	}
}

// FuzzDeadLetterOutput: whatever a dead letter holds, table cells are one printable line and
// --json output decodes. (Describing a dead letter and preparing its replay are the AMQP
// adapter's now: celery/broker/amqpbroker's TestDescribe and FuzzDescribe.)
func FuzzDeadLetterOutput(f *testing.F) {
	f.Add("id-1", "diag.add", `NotRegistered: task "x"`, "celery", []byte(`[[1],{},{}]`), "application/json")
	f.Add("", "", "", "", []byte(`{"id":"v1","task":"t"}`), "application/json")
	f.Add("\xff\x00", "\n\t", strings.Repeat("é", 200), "q\x7f", []byte(`{"id":5}`), "json")
	f.Add("x", "y", "z", "w", []byte("\x00\xff"), "")
	f.Fuzz(func(t *testing.T, id, task, reason, queue string, b []byte, ctype string) {
		dl := deadLetter{ID: id, Task: task, Reason: reason, OriginalQueue: queue, DeadLetteredAt: reason,
			ContentType: ctype, BodyBytes: len(b)}
		for _, s := range []string{id, task, reason, queue, string(b)} {
			c := cell(s, 40)
			if !utf8.ValidString(c) || utf8.RuneCountInString(c) > 40 || c == "" || strings.ContainsAny(c, "\n\r\t\x00") {
				t.Fatalf("cell(%q) = %q", s, c)
			}
		}
		var buf bytes.Buffer
		if err := writeJSON(&buf, []deadLetter{dl}); err != nil {
			t.Fatal(err)
		}
		var back []deadLetter
		if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back) != 1 {
			t.Fatalf("--json output does not decode: %v", err)
		}
		if err := writeTable(io.Discard, []deadLetter{dl}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDeadLetterBrokerDown: with the broker unreachable a command fails with an error saying so
// (each broker URL is tried once) instead of retrying until its timeout as a worker would.
func TestDeadLetterBrokerDown(t *testing.T) {
	t.Parallel()
	e, _, _ := dlEnv(t)
	e.file.Celery.BrokerURL = "amqp://guest:guest@127.0.0.1:1/;amqp://guest:guest@127.0.0.1:2/" // nothing listens there
	err := e.deadletter(context.Background(), []string{"list", "--queue", "q"})
	var ue usageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "connecting to the broker") {
		t.Fatalf("list with the broker down: %v, want an error about connecting to the broker", err)
	}
}
