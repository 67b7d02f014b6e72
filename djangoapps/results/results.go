package results

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq" // the PostgreSQL driver

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// The tables of django-celery-results 2.4, as its migrations create them.
const (
	TaskTable  = "django_celery_results_taskresult"
	GroupTable = "django_celery_results_groupresult"
	ChordTable = "django_celery_results_chordcounter"
)

// DefaultPollInterval is how often Wait reads the row: AsyncResult.get's default interval.
const DefaultPollInterval = 500 * time.Millisecond

// Options configure a Backend. The zero value is usable.
type Options struct {
	// PollInterval is how often Wait reads the task's row (default DefaultPollInterval).
	PollInterval time.Duration
	// MaxOpenConns bounds the connections Open's pool keeps (default 10). Ignored by New.
	MaxOpenConns int
	// Expires is result_expires: Cleanup deletes the results done longer ago (0: never).
	Expires time.Duration
}

// Backend is the django-db result backend on one PostgreSQL database. It implements
// backend.Backend and is safe for concurrent use.
type Backend struct {
	db      *sqlx.DB
	poll    time.Duration
	expires time.Duration
	now     func() time.Time
}

var _ backend.Backend = (*Backend)(nil)

// Open connects to the PostgreSQL database dsn names (a postgres:// URL or key=value DSN; a
// search_path parameter picks the schema) and checks that django-celery-results' tables are
// there: a database that does not answer, or one where `manage.py migrate django_celery_results`
// has not run, is an error saying so. Close the Backend when done.
func Open(ctx context.Context, dsn string, opts Options) (*Backend, error) {
	if dsn == "" {
		return nil, errors.New("results: no database URL (set database_url to the Django project's PostgreSQL database)")
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("results: database_url: %w", err)
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 10
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	b := New(db, opts)
	if err := b.Check(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return b, nil
}

// New returns a Backend on db, which the caller owns (Backend.Close closes it too).
func New(db *sqlx.DB, opts Options) *Backend {
	poll := opts.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	return &Backend{db: db, poll: poll, expires: opts.Expires, now: time.Now}
}

// Check reports whether the database answers and has django-celery-results' three tables.
func (b *Backend) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.db.PingContext(ctx); err != nil {
		return fmt.Errorf("results: cannot connect to the database (database_url): %w", err)
	}
	for _, table := range []string{TaskTable, GroupTable, ChordTable} {
		var found sql.NullString
		if err := b.db.GetContext(ctx, &found, "SELECT to_regclass($1)::text", table); err != nil {
			return fmt.Errorf("results: looking for table %s: %w", table, err)
		}
		if !found.Valid {
			return fmt.Errorf("results: table %s does not exist in the database's search_path: run `python manage.py migrate django_celery_results` in the Django project (with django_celery_results in INSTALLED_APPS)", table)
		}
	}
	return nil
}

// Close closes the Backend's connection pool (for a Backend made with New, the caller's db).
func (b *Backend) Close() error { return b.db.Close() }

// StoreError is the error of a Store that did not write. Temporary reports whether storing again
// may succeed (a lost connection) or not (a SUCCESS already stored, an invalid meta).
type StoreError struct {
	TaskID string
	Err    error
	temp   bool
}

// Error implements error.
func (e *StoreError) Error() string {
	return fmt.Sprintf("results: store %s: %v", e.TaskID, e.Err)
}

// Unwrap returns the cause.
func (e *StoreError) Unwrap() error { return e.Err }

// Temporary reports whether storing again may succeed.
func (e *StoreError) Temporary() bool { return e.temp }

// row is one task result row as stored.
type row struct {
	TaskID           string       `db:"task_id"`
	Status           string       `db:"status"`
	Result           *string      `db:"result"`
	Traceback        *string      `db:"traceback"`
	Meta             *string      `db:"meta"`
	ContentType      string       `db:"content_type"`
	ContentEncoding  string       `db:"content_encoding"`
	TaskName         *string      `db:"task_name"`
	TaskArgs         *string      `db:"task_args"`
	TaskKwargs       *string      `db:"task_kwargs"`
	Worker           *string      `db:"worker"`
	PeriodicTaskName *string      `db:"periodic_task_name"`
	DateDone         sql.NullTime `db:"date_done"`
	DateCreated      sql.NullTime `db:"date_created"`
}

// encodeRow builds the row DatabaseBackend._store_result writes for m at time now.
func encodeRow(m protocol.ResultMeta, now time.Time) (row, error) {
	r := row{TaskID: m.TaskID, Status: m.Status, ContentType: ContentType, ContentEncoding: ContentEncoding}
	result := m.Result
	if result == nil {
		result = json.RawMessage("null")
	}
	text, err := encodeContent(result)
	if err != nil {
		return row{}, fmt.Errorf("result: %w", err)
	}
	r.Result = &text
	children := m.Children
	if children == nil {
		children = json.RawMessage("[]")
	}
	meta, err := encodeContent(map[string]json.RawMessage{"children": children})
	if err != nil {
		return row{}, fmt.Errorf("children: %w", err)
	}
	r.Meta = &meta
	done := now
	if m.DateDone != nil {
		done = *m.DateDone
	}
	r.DateDone = sql.NullTime{Time: done.UTC(), Valid: true}
	if x := m.Extended; x != nil {
		// _get_extended_properties: only with result_extended, the traceback included.
		r.Traceback = m.Traceback
		r.TaskName = nullable(x.Name)
		r.Worker = nullable(x.Worker)
		r.PeriodicTaskName = nullable(x.PeriodicTaskName)
		if r.TaskArgs, err = encodeRequestArgs(x.ArgsRepr, x.Args); err != nil {
			return row{}, fmt.Errorf("task_args: %w", err)
		}
		if r.TaskKwargs, err = encodeRequestArgs(x.KwargsRepr, x.Kwargs); err != nil {
			return row{}, fmt.Errorf("task_kwargs: %w", err)
		}
	}
	return r, nil
}

// encodeRequestArgs is task_args/task_kwargs: the argsrepr string JSON-encoded, else (protocol 1)
// the arguments themselves, else NULL.
func encodeRequestArgs(repr string, args json.RawMessage) (*string, error) {
	var v any
	switch {
	case repr != "":
		v = repr
	case args != nil:
		v = args
	default:
		return nil, nil
	}
	s, err := encodeContent(v)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// querier is what storing needs: the database or a transaction.
type querier interface {
	QueryRowxContext(ctx context.Context, query string, args ...any) *sqlx.Row
}

// storeSQL is get_or_create + save in one statement: the insert sets date_created, an update
// keeps it; a stored SUCCESS is left alone (no row is returned).
const storeSQL = `INSERT INTO ` + TaskTable + ` AS t
	(task_id, status, result, traceback, meta, content_type, content_encoding, task_name, task_args,
	 task_kwargs, worker, periodic_task_name, date_created, date_done)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
	ON CONFLICT (task_id) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result,
	 traceback = EXCLUDED.traceback, meta = EXCLUDED.meta, content_type = EXCLUDED.content_type,
	 content_encoding = EXCLUDED.content_encoding, task_name = EXCLUDED.task_name,
	 task_args = EXCLUDED.task_args, task_kwargs = EXCLUDED.task_kwargs, worker = EXCLUDED.worker,
	 periodic_task_name = EXCLUDED.periodic_task_name, date_done = EXCLUDED.date_done
	WHERE t.status <> 'SUCCESS'
	RETURNING t.id`

// Store writes m's row, as DatabaseBackend.store_result does; see backend.ResultBackend. A
// stored SUCCESS is never replaced.
func (b *Backend) Store(ctx context.Context, m protocol.ResultMeta) error {
	return b.store(ctx, b.db, m)
}

func (b *Backend) store(ctx context.Context, q querier, m protocol.ResultMeta) error {
	if m.TaskID == "" || m.Status == "" {
		return &StoreError{TaskID: m.TaskID, Err: fmt.Errorf("%w: task id %q, status %q", backend.ErrInvalidMeta, m.TaskID, m.Status)}
	}
	r, err := encodeRow(m, b.now())
	if err != nil {
		return &StoreError{TaskID: m.TaskID, Err: fmt.Errorf("%w: %v", backend.ErrInvalidMeta, err)}
	}
	var id int64
	err = q.QueryRowxContext(ctx, storeSQL, r.TaskID, r.Status, r.Result, r.Traceback, r.Meta, r.ContentType,
		r.ContentEncoding, r.TaskName, r.TaskArgs, r.TaskKwargs, r.Worker, r.PeriodicTaskName, r.DateDone.Time).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return &StoreError{TaskID: m.TaskID, Err: backend.ErrAlreadySucceeded}
	}
	if err != nil {
		return &StoreError{TaskID: m.TaskID, Err: err, temp: !dataError(err)}
	}
	return nil
}

// dataError reports whether PostgreSQL refused the row's values themselves (SQLSTATE class 22,
// data exception, e.g. a task id longer than the column's 255 characters; or 23, a constraint):
// writing the same row again cannot succeed.
func dataError(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	c := pe.Code.Class()
	return c == "22" || c == "23"
}

const getSQL = `SELECT task_id, status, result, traceback, meta, content_type, content_encoding, task_name,
	task_args, task_kwargs, worker, periodic_task_name, date_done, date_created
	FROM ` + TaskTable + ` WHERE task_id = $1`

// Get reads a task's row as DatabaseBackend._get_task_meta_for does; an id without a row is
// PENDING. Extended is set when the row has result_extended fields; its ArgsRepr/KwargsRepr hold
// task_args/task_kwargs when they are strings (argsrepr), Args/Kwargs when they are not.
func (b *Backend) Get(ctx context.Context, id string) (protocol.ResultMeta, error) {
	var r row
	err := b.db.QueryRowxContext(ctx, getSQL, id).StructScan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.ResultMeta{TaskID: id, Status: protocol.StatePending}, nil
	}
	if err != nil {
		return protocol.ResultMeta{}, fmt.Errorf("results: get %s: %w", id, err)
	}
	m, err := decodeRow(r)
	if err != nil {
		return protocol.ResultMeta{}, fmt.Errorf("results: get %s: %w", id, err)
	}
	return m, nil
}

// decodeRow turns a stored row into a result meta.
func decodeRow(r row) (protocol.ResultMeta, error) {
	m := protocol.ResultMeta{TaskID: r.TaskID, Status: r.Status, Traceback: r.Traceback}
	var err error
	if m.Result, err = decodeContent(r.ContentType, r.ContentEncoding, r.Result); err != nil {
		return m, fmt.Errorf("result: %w", err)
	}
	meta, err := decodeContent(r.ContentType, r.ContentEncoding, r.Meta)
	if err != nil {
		return m, fmt.Errorf("meta: %w", err)
	}
	if m.Children, err = decodeMetaChildren(meta); err != nil {
		return m, err
	}
	if r.DateDone.Valid {
		t := r.DateDone.Time.UTC()
		m.DateDone = &t
	}
	if r.TaskName == nil && r.Worker == nil && r.TaskArgs == nil && r.TaskKwargs == nil && r.PeriodicTaskName == nil {
		return m, nil
	}
	x := &protocol.ExtendedMeta{Name: deref(r.TaskName), Worker: deref(r.Worker), PeriodicTaskName: deref(r.PeriodicTaskName)}
	if x.ArgsRepr, x.Args, err = decodeRequestArgs(r, r.TaskArgs); err != nil {
		return m, fmt.Errorf("task_args: %w", err)
	}
	if x.KwargsRepr, x.Kwargs, err = decodeRequestArgs(r, r.TaskKwargs); err != nil {
		return m, fmt.Errorf("task_kwargs: %w", err)
	}
	m.Extended = x
	return m, nil
}

// decodeRequestArgs reads task_args/task_kwargs: a JSON string is the argsrepr, anything else the
// arguments themselves.
func decodeRequestArgs(r row, text *string) (string, json.RawMessage, error) {
	raw, err := decodeContent(r.ContentType, r.ContentEncoding, text)
	if err != nil || raw == nil {
		return "", nil, err
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil, nil
	}
	return "", raw, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Wait polls the task's row every Options.PollInterval until it is in a ready state; see
// backend.ResultBackend.
func (b *Backend) Wait(ctx context.Context, id string) (protocol.ResultMeta, error) {
	last := protocol.ResultMeta{TaskID: id, Status: protocol.StatePending}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
		m, err := b.Get(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = m
		if protocol.IsReady(m.Status) {
			return m, nil
		}
		t.Reset(b.poll)
	}
}
