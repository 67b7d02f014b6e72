package results_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/forumads/forumads/celery"
	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/canvas"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/djangoapps/results"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestOpenChecksTheTables: Open starts only on a database with django-celery-results' tables,
// and says what to run otherwise.
func TestOpenChecksTheTables(t *testing.T) {
	t.Parallel()
	migrated, empty := migratedSchema(t), newSchema(t)
	for _, tc := range []struct {
		name, dsn string
		errParts  []string // nil: Open succeeds
	}{
		{"migrated", migrated.URL, nil},
		{"no tables", empty.URL, []string{"django_celery_results_taskresult does not exist", "manage.py migrate django_celery_results"}},
		{"no URL", "", []string{"database_url"}},
		{"nothing listens", "postgres://u:p@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", []string{"cannot connect"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := results.Open(ctx(t), tc.dsn, results.Options{})
			if tc.errParts == nil {
				if err != nil {
					t.Fatal(err)
				}
				_ = b.Close()
				return
			}
			if err == nil {
				_ = b.Close()
				t.Fatal("Open succeeded")
			}
			for _, p := range tc.errParts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not say %q", err, p)
				}
			}
		})
	}
}

// TestSavedGroupIsPythonsGroupResult: a group the Go side saves is GroupResult.as_tuple() in the
// row, and Python's GroupResult.restore reads its members.
func TestSavedGroupIsPythonsGroupResult(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	b := results.New(s.DB, results.Options{})
	if err := b.SaveGroup(ctx(t), "g1", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	var row struct {
		Result          string `db:"result"`
		ContentType     string `db:"content_type"`
		ContentEncoding string `db:"content_encoding"`
	}
	if err := s.DB.Get(&row, `SELECT result, content_type, content_encoding FROM django_celery_results_groupresult WHERE group_id = 'g1'`); err != nil {
		t.Fatal(err)
	}
	if want := `[["g1", null], [[["a", null], null], [["b", null], null]]]`; row.Result != want ||
		row.ContentType != "application/json" || row.ContentEncoding != "utf-8" {
		t.Errorf("row %+v; want result %s in application/json, utf-8", row, want)
	}
	var got struct{ IDs []string }
	peer(t, s, &got, "restore", "g1")
	if strings.Join(got.IDs, ",") != "a,b" {
		t.Errorf("Python restored %v; want [a b]", got.IDs)
	}
	peer(t, s, &got, "restore", "never-saved")
	if got.IDs != nil {
		t.Errorf("Python restored %v for a group never saved", got.IDs)
	}
}

// TestRowsWithoutExtended: without result_extended the request columns stay NULL, the traceback
// too (django-celery-results 2.4 writes it only with result_extended), and date_done is set for
// every state (Django's auto_now).
func TestRowsWithoutExtended(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	b := results.New(s.DB, results.Options{})
	tb := "Traceback ...\n"
	for _, m := range []protocol.ResultMeta{
		{TaskID: "started", Status: protocol.StateStarted, Result: json.RawMessage(`{"pid": 1, "hostname": "celery@h"}`)},
		{TaskID: "failed", Status: protocol.StateFailure, Traceback: &tb,
			Result: protocol.ExceptionResult(protocol.ExceptionInfo{Type: "ValueError", Message: []any{"é"}, Module: "builtins"})},
	} {
		if err := b.Store(ctx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		TaskID    string  `db:"task_id"`
		Result    string  `db:"result"`
		Traceback *string `db:"traceback"`
		TaskName  *string `db:"task_name"`
		TaskArgs  *string `db:"task_args"`
		Worker    *string `db:"worker"`
		Meta      string  `db:"meta"`
		Done      bool    `db:"done"`
	}
	var rows []row
	if err := s.DB.Select(&rows, `SELECT task_id, result, traceback, task_name, task_args, worker, meta,
		date_done >= date_created AS done FROM django_celery_results_taskresult ORDER BY task_id`); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"failed": `{"exc_type": "ValueError", "exc_message": ["\u00e9"], "exc_module": "builtins"}`,
		"started": `{"pid": 1, "hostname": "celery@h"}`}
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.Result != want[r.TaskID] || r.Traceback != nil || r.TaskName != nil || r.TaskArgs != nil || r.Worker != nil ||
			r.Meta != `{"children": []}` || !r.Done {
			t.Errorf("row %+v; want result %s, meta {\"children\": []}, NULL request columns and traceback", r, want[r.TaskID])
		}
	}
	got, err := b.Get(ctx(t), "failed")
	if err != nil || got.Status != protocol.StateFailure || got.DateDone == nil || got.Extended != nil {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	var exc protocol.ExceptionInfo
	if err := json.Unmarshal(got.Result, &exc); err != nil || exc.Type != "ValueError" || exc.Message[0] != "é" {
		t.Errorf("result %s (%v)", got.Result, err)
	}
}

// TestGetReadsBinaryAndRefusesPickle: a row written by Python with a binary serializer is read
// when it is base64 JSON, and a pickled one is an error naming its content type.
func TestGetReadsBinaryAndRefusesPickle(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	b := results.New(s.DB, results.Options{})
	for _, r := range []struct{ id, ctype, enc, result string }{
		{"binary", "application/json", "binary", "WzEsIDJd"}, // [1, 2]
		{"pickle", "application/x-python-serialize", "binary", "gAVLAS4="},
		{"badb64", "application/json", "binary", "***"},
	} {
		if _, err := s.DB.Exec(`INSERT INTO django_celery_results_taskresult (task_id, status, content_type,
			content_encoding, result, meta, date_created, date_done) VALUES ($1, 'SUCCESS', $2, $3, $4, NULL, now(), now())`,
			r.id, r.ctype, r.enc, r.result); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.Get(ctx(t), "binary"); err != nil || string(got.Result) != "[1, 2]" {
		t.Errorf("Get(binary) = %s, %v", got.Result, err)
	}
	for id, want := range map[string]string{"pickle": "application/x-python-serialize", "badb64": "base64"} {
		if _, err := b.Get(ctx(t), id); !errors.Is(err, results.ErrContent) || !strings.Contains(err.Error(), want) {
			t.Errorf("Get(%s) = %v; want ErrContent naming %q", id, err, want)
		}
	}
}

// TestChordCounterRows: a Go chord's counter row keeps its parts in group_index slots and the
// count down to zero, when it is deleted.
func TestChordCounterRows(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	b := results.New(s.DB, results.Options{})
	if err := b.SetChordSize(ctx(t), "g", 3); err != nil {
		t.Fatal(err)
	}
	read := func() (string, int) {
		var c struct {
			SubTasks string `db:"sub_tasks"`
			Count    int    `db:"count"`
		}
		if err := s.DB.Get(&c, `SELECT sub_tasks, count FROM django_celery_results_chordcounter WHERE group_id = 'g'`); err != nil {
			t.Fatal(err)
		}
		return c.SubTasks, c.Count
	}
	if sub, n := read(); sub != "[null, null, null]" || n != 3 {
		t.Fatalf("new counter: %s, %d", sub, n)
	}
	one := 1
	if _, err := b.OnChordPartReturn(ctx(t), backend.ChordPart{GroupID: "g", TaskID: "b", GroupIndex: &one,
		State: protocol.StateSuccess, Result: json.RawMessage("2")}); err != nil {
		t.Fatal(err)
	}
	if sub, n := read(); sub != `[null, [["b", null], null], null]` || n != 2 {
		t.Fatalf("after one part: %s, %d", sub, n)
	}
	for i, id := range []string{"a", "c"} {
		idx := i * 2
		out, err := b.OnChordPartReturn(ctx(t), backend.ChordPart{GroupID: "g", TaskID: id, GroupIndex: &idx,
			State: protocol.StateSuccess, Result: json.RawMessage(`"` + id + `"`)})
		if err != nil || out.Complete != (id == "c") {
			t.Fatalf("part %s: %+v, %v", id, out, err)
		}
		if out.Complete && (len(out.Results) != 3 || string(out.Results[0]) != `"a"` || string(out.Results[1]) != "2") {
			t.Errorf("results %s", out.Results)
		}
	}
	var n int
	if err := s.DB.Get(&n, `SELECT count(*) FROM django_celery_results_chordcounter`); err != nil || n != 0 {
		t.Errorf("%d counter rows left (%v)", n, err)
	}
}

// TestCleanupDeletesExpiredResults is celery.backend_cleanup on this backend: with result_expires
// set, the task and group rows whose date_done is older are deleted (the counts say so) and the
// fresh ones stay; without it nothing goes.
func TestCleanupDeletesExpiredResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name              string
		expires           time.Duration
		tasks, groups     int64
		oldTask, oldGroup bool // still there after Cleanup
	}{
		{"expires 1 day", 24 * time.Hour, 1, 1, false, false},
		{"never expires", 0, 0, 0, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := migratedSchema(t)
			b := results.New(s.DB, results.Options{Expires: tc.expires})
			old := time.Now().Add(-48 * time.Hour)
			for _, m := range []protocol.ResultMeta{{TaskID: "old", Status: protocol.StateSuccess, DateDone: &old},
				{TaskID: "new", Status: protocol.StateSuccess}} {
				if err := b.Store(ctx(t), m); err != nil {
					t.Fatal(err)
				}
			}
			for _, g := range []string{"gold", "gnew"} {
				if err := b.SaveGroup(ctx(t), g, []string{"new"}); err != nil {
					t.Fatal(err)
				}
			}
			s.DB.MustExec(`UPDATE `+results.GroupTable+` SET date_done = $1 WHERE group_id = 'gold'`, old)
			tasks, groups, err := b.Cleanup(ctx(t))
			if err != nil || tasks != tc.tasks || groups != tc.groups {
				t.Fatalf("Cleanup = %d tasks, %d groups, %v; want %d, %d", tasks, groups, err, tc.tasks, tc.groups)
			}
			for id, want := range map[string]bool{"old": tc.oldTask, "new": true} {
				got, err := b.Get(ctx(t), id)
				if err != nil || (got.Status == protocol.StateSuccess) != want {
					t.Errorf("Get(%s) = %s, %v; want there: %v", id, got.Status, err, want)
				}
			}
			for g, want := range map[string]bool{"gold": tc.oldGroup, "gnew": true} {
				var n int
				if err := s.DB.Get(&n, `SELECT count(*) FROM `+results.GroupTable+` WHERE group_id = $1`, g); err != nil || (n == 1) != want {
					t.Errorf("group %s: %d rows, %v; want there: %v", g, n, err, want)
				}
			}
		})
	}
}

// TestValuesTheTableRefusesAreNotRetried: a row PostgreSQL refuses for its values (a task id past
// the column's 255 characters, an unencodable result) is an error the worker does not retry, and
// a good write after it still lands.
func TestValuesTheTableRefusesAreNotRetried(t *testing.T) {
	t.Parallel()
	b := results.New(migratedSchema(t).DB, results.Options{})
	for _, m := range []protocol.ResultMeta{
		{TaskID: strings.Repeat("x", 256), Status: protocol.StateSuccess},
		{TaskID: "bad-json", Status: protocol.StateSuccess, Result: json.RawMessage("{nope")},
		{TaskID: "long-worker", Status: protocol.StateSuccess, Extended: &protocol.ExtendedMeta{Worker: strings.Repeat("w", 101)}},
	} {
		err := b.Store(ctx(t), m)
		var tmp interface{ Temporary() bool }
		if err == nil || !errors.As(err, &tmp) || tmp.Temporary() {
			t.Errorf("Store(%.20s…) = %v; want an error that is not temporary", m.TaskID, err)
		}
	}
	if err := b.Store(ctx(t), protocol.ResultMeta{TaskID: "ok", Status: protocol.StateSuccess}); err != nil {
		t.Fatal(err)
	}
}

// TestBackendCleanupTask: the built-in task celery.backend_cleanup, as a worker registers it,
// returns None and deletes the expired rows on django-db; on a backend that expires results
// itself (none here: a worker without a result backend) it does nothing and still succeeds.
func TestBackendCleanupTask(t *testing.T) {
	t.Parallel()
	s := migratedSchema(t)
	b := results.New(s.DB, results.Options{Expires: time.Hour})
	old := time.Now().Add(-2 * time.Hour)
	if err := b.Store(ctx(t), protocol.ResultMeta{TaskID: "old", Status: protocol.StateSuccess, DateDone: &old}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		backend any
		oldLeft int
	}{
		{"no result backend", nil, 1},
		{"django-db", b, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := celery.NewRegistry()
			if err := canvas.RegisterBackendCleanup(reg, tc.backend, nil); err != nil {
				t.Fatal(err)
			}
			res, err := reg.Apply(ctx(t), canvas.TaskBackendCleanup, nil, nil)
			if err != nil || string(res) != "null" {
				t.Fatalf("celery.backend_cleanup() = %s, %v; want null", res, err)
			}
			var n int
			if err := s.DB.Get(&n, `SELECT count(*) FROM `+results.TaskTable+` WHERE task_id = 'old'`); err != nil || n != tc.oldLeft {
				t.Errorf("expired row: %d left, %v; want %d", n, err, tc.oldLeft)
			}
		})
	}
}
