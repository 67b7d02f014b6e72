// Package importer loads an ads feed (format: package ads/feed) into PostgreSQL; it is the engine
// of the ads.import_feed task.
//
// [Import] works in three steps:
//
//  1. Fetch: the whole source is read first. A local file is used in place; a download goes
//     to a temporary file (2xx status required, Content-Length checked, a timeout or a broken
//     body fails the import); a gzip stream is decompressed to its end. Any failure here fails
//     the import and applies nothing.
//  2. Read: every row is parsed and validated (package feed); the valid rows are spooled per
//     kind to temporary files and the refused ones recorded. This gives the total for progress.
//  3. Apply: kind by kind in dependency order (forums, advertisers, campaigns, ads), in batches
//     of Options.BatchSize rows, one transaction per batch, two batches of a kind at a time on
//     two connections (one when the pool allows fewer than four): COPY into a temporary staging table,
//     then one set-based upsert that inserts new rows and updates only rows that differ (an
//     update bumps version and sets updated_at; an identical row is not touched, so importing
//     the same feed twice changes nothing). Campaigns and ads whose advertiser or campaign is
//     neither in the database nor applied from this feed are refused as row errors. A row the
//     database refuses anyway (a CHECK, a value out of range) is isolated by halving the batch
//     under savepoints and refused alone; the rest of its batch is applied.
//
// Each run is recorded in import_runs (running → succeeded or failed, with counts and the error)
// and every refused row (and every unknown-field notice) in import_errors, which are written as
// they are found, in their own transactions, so a failing batch loses none of them.
//
// Batch transactions commit asynchronously (synchronous_commit off): a crash can lose the last
// batches, never part of one, and the run's final synchronous update makes every batch durable
// before the run reads succeeded.
//
// Cancelling the context stops the import between batches (never inside one): the run is marked
// failed with the error "cancelled", batches already committed stay (each is complete and
// consistent), and importing the same feed again completes the work.
package importer

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/forumads/forumads/ads/feed"
)

// Defaults of [Options].
const (
	DefaultBatchSize = 5000
	DefaultMaxBytes  = 1 << 30
)

// progressInterval is the shortest time between two progress calls.
const progressInterval = 200 * time.Millisecond

// batchTimeout bounds one batch's transaction, which runs to its end even when the import is
// cancelled.
const batchTimeout = 10 * time.Minute

// Options tune an import. The zero value works.
type Options struct {
	// TaskID is recorded in import_runs.task_id ("" = NULL).
	TaskID string
	// BatchSize is the number of rows per transaction (default 5000).
	BatchSize int
	// HTTPClient downloads http(s) sources (default: 30 s for the whole download, with
	// dial, TLS and response-header timeouts).
	HTTPClient *http.Client
	// MaxBytes refuses a source larger than this, and a gzip source whose content is larger
	// (default 1 GiB).
	MaxBytes int64
	// Progress, when set, is called as rows are applied with the rows done (applied or
	// refused) and the total, at most about 5 times a second, and once at the end.
	Progress func(current, total int64)
	// Logger receives the import's log (default: discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// KindCounts are the rows of one kind.
type KindCounts struct {
	Rows      int64 `json:"rows"`
	Created   int64 `json:"created"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Failed    int64 `json:"failed"`
}

// Summary is the outcome of an import (also when it failed: then with what was done).
type Summary struct {
	RunID      int64  `json:"run_id"`
	Source     string `json:"source"` // without a URL's password
	Status     string `json:"status"` // succeeded or failed
	Error      string `json:"error,omitempty"`
	RowsTotal  int64  `json:"rows_total"`  // rows in the feed (blank lines and the CSV header excluded)
	RowsOK     int64  `json:"rows_ok"`     // rows applied: created + updated + unchanged
	RowsFailed int64  `json:"rows_failed"` // rows refused (see import_errors)
	Created    int64  `json:"created"`
	Updated    int64  `json:"updated"`
	Unchanged  int64  `json:"unchanged"`
	Notices    int64  `json:"notices"` // unknown fields reported (not refusals)
	// Kinds has the counts per kind (rows whose kind was unreadable count only in the totals).
	Kinds   map[feed.Kind]*KindCounts `json:"kinds"`
	Format  feed.Format               `json:"format,omitempty"`
	Gzip    bool                      `json:"gzip"`
	Bytes   int64                     `json:"bytes"` // the source's size
	Seconds float64                   `json:"seconds"`
}

// Import loads the feed at source (a local path, a file:// URL or an http(s):// URL) into db,
// recording the run in import_runs and refused rows in import_errors. It returns an error when
// the import failed as a whole (unreadable source, cancelled, database failure); refused rows
// are not an error of the import. See the package documentation for how it works.
func Import(ctx context.Context, db *sqlx.DB, source string, o Options) (Summary, error) {
	o = o.withDefaults()
	started := time.Now()
	src, srcErr := parseSource(source)
	sum := Summary{Source: src.display, Status: "running", Kinds: map[feed.Kind]*KindCounts{}}
	for _, k := range feed.Kinds() {
		sum.Kinds[k] = &KindCounts{}
	}
	if db == nil {
		return sum, errors.New("import: no database")
	}
	// Bookkeeping (the run row, the errors) is written even when ctx is cancelled.
	book, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var taskID any
	if o.TaskID != "" {
		taskID = feed.SafeText(o.TaskID, 200)
	}
	if err := db.QueryRowContext(book, `INSERT INTO import_runs (task_id, source) VALUES ($1, $2) RETURNING id`,
		taskID, feed.SafeText(src.display, 4096)).Scan(&sum.RunID); err != nil {
		return sum, fmt.Errorf("import %s: record the run in import_runs: %w", src.display, err)
	}
	im := &importer{db: db, o: o, sum: &sum, log: o.Logger.With("run_id", sum.RunID, "source", src.display)}
	im.log.Info("import started", "task_id", o.TaskID)
	err := srcErr
	if err == nil {
		err = im.run(ctx, src)
	}
	if ferr := im.flushIssues(book, db); ferr != nil && err == nil {
		err = ferr
	}
	if im.o.Progress != nil {
		im.o.Progress(im.done, sum.RowsTotal)
	}
	sum.Status, sum.Seconds = "succeeded", time.Since(started).Seconds()
	var runErr any
	if err != nil {
		sum.Status, sum.Error = "failed", err.Error()
		runErr = feed.SafeText(err.Error(), 4000)
		if errors.Is(err, errCancelled) {
			runErr = "cancelled"
		}
	}
	if _, uerr := db.ExecContext(book, `UPDATE import_runs SET status = $2, finished_at = now(), rows_total = $3,
		rows_ok = $4, rows_failed = $5, error = $6 WHERE id = $1`,
		sum.RunID, sum.Status, sum.RowsTotal, sum.RowsOK, sum.RowsFailed, runErr); uerr != nil {
		im.log.Error("cannot record the end of the run", "err", uerr)
		if err == nil {
			err = fmt.Errorf("record the end of the run in import_runs: %w", uerr)
			sum.Status, sum.Error = "failed", err.Error()
		}
	}
	if err != nil {
		im.log.Error("import failed", "err", err, "rows_total", sum.RowsTotal, "rows_ok", sum.RowsOK, "rows_failed", sum.RowsFailed)
		return sum, fmt.Errorf("import %s (run %d): %w", src.display, sum.RunID, err)
	}
	if sum.Created+sum.Updated >= analyzeAfter {
		// Fresh rows have no planner statistics until autovacuum comes by: without them the
		// follow-up ads.score and ads.warm_cache joins get plans for empty tables.
		if _, aerr := db.ExecContext(book, `ANALYZE advertisers, campaigns, ads, forums`); aerr != nil {
			im.log.Warn("cannot analyze the imported tables", "err", aerr)
		}
	}
	im.log.Info("import succeeded", "rows_total", sum.RowsTotal, "rows_ok", sum.RowsOK, "rows_failed", sum.RowsFailed,
		"created", sum.Created, "updated", sum.Updated, "unchanged", sum.Unchanged, "seconds", sum.Seconds)
	return sum, nil
}

// analyzeAfter is how many created or updated rows make an import ANALYZE the tables it wrote.
const analyzeAfter = 1000

// errCancelled marks an import stopped by its context.
var errCancelled = errors.New("cancelled")

type importer struct {
	db           *sqlx.DB
	o            Options
	sum          *Summary
	log          *slog.Logger
	tmpDir       string
	issues       []feed.Issue // not yet written to import_errors
	done         int64        // rows applied or refused so far, for progress
	lastProgress time.Time
}

func (im *importer) cancelled(ctx context.Context) error {
	return fmt.Errorf("%w after %d of %d rows: %w", errCancelled, im.done, im.sum.RowsTotal, context.Cause(ctx))
}

func (im *importer) run(ctx context.Context, src source) error {
	tmp, err := os.MkdirTemp("", "forumads-import-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	im.tmpDir = tmp

	fx, err := im.fetch(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return im.cancelled(ctx)
		}
		return err
	}
	defer im.remove(fx)
	im.sum.Gzip, im.sum.Bytes = fx.gzip, fx.bytes

	spools, err := im.read(ctx, fx.path, src)
	for _, s := range spools {
		defer s.close()
	}
	if err != nil {
		return err
	}
	im.done = im.sum.RowsFailed

	// One connection per worker, each with its own staging tables.
	var conns []*sqlx.Conn
	defer func() {
		for _, c := range conns {
			dropStages(context.WithoutCancel(ctx), c)
			_ = c.Close()
		}
	}()
	for range workers(im.db) {
		conn, err := im.db.Connx(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return im.cancelled(ctx)
			}
			return fmt.Errorf("database connection: %w", err)
		}
		conns = append(conns, conn)
		if err := createStages(ctx, conn); err != nil {
			return err
		}
	}
	if err := im.flushIssues(context.WithoutCancel(ctx), conns[0]); err != nil {
		return err
	}
	for _, k := range feed.Kinds() {
		if err := im.applyKind(ctx, conns, spools[k]); err != nil {
			return err
		}
	}
	return im.flushIssues(context.WithoutCancel(ctx), conns[0])
}

// workers is how many batches are applied at once, each on its own connection: two, unless the
// pool allows fewer than four connections (one is left for bookkeeping and other users).
func workers(db *sqlx.DB) int {
	if m := db.Stats().MaxOpenConnections; m > 0 && m < 4 {
		return 1
	}
	return 2
}

// read is the first pass: it validates every row, spools the valid ones per kind and records
// the refused ones.
func (im *importer) read(ctx context.Context, path string, src source) (map[feed.Kind]*rowSpool, error) {
	spools := map[feed.Kind]*rowSpool{}
	for _, k := range feed.Kinds() {
		s, err := newRowSpool(im.tmpDir, k)
		if err != nil {
			return spools, err
		}
		spools[k] = s
	}
	f, err := os.Open(path)
	if err != nil {
		return spools, fmt.Errorf("open %s: %w", src.display, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	format, ok := feed.FormatFromName(src.name)
	if !ok {
		p, err := br.Peek(4096)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return spools, fmt.Errorf("read %s: %w", src.display, err)
		}
		format = feed.SniffFormat(p)
	}
	im.sum.Format = format
	rd, err := feed.NewReader(br, format)
	if err != nil {
		return spools, err
	}
	for i := 0; ; i++ {
		if i%4096 == 0 && ctx.Err() != nil {
			return spools, im.cancelled(ctx)
		}
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return spools, fmt.Errorf("%s: %w", src.display, err)
		}
		im.sum.Notices += int64(len(rec.Notices))
		im.issues = append(im.issues, rec.Notices...)
		if !rec.IsRow() {
			continue
		}
		im.sum.RowsTotal++
		if rec.Row == nil {
			im.sum.RowsFailed++
			if kc := im.sum.Kinds[rec.Errors[0].Kind]; kc != nil {
				kc.Rows++
				kc.Failed++
			}
			im.issues = append(im.issues, rec.Errors...)
		} else {
			im.sum.Kinds[rec.Row.Kind].Rows++
			if err := spools[rec.Row.Kind].put(rec.Row); err != nil {
				return spools, err
			}
		}
		if len(im.issues) >= 1000 {
			if err := im.flushIssues(context.WithoutCancel(ctx), im.db); err != nil {
				return spools, err
			}
		}
	}
	im.log.Debug("feed read", "format", format, "rows", im.sum.RowsTotal, "refused", im.sum.RowsFailed)
	return spools, nil
}

// outcome is a finished batch.
type outcome struct {
	kind feed.Kind
	rows int64
	res  batchResult
	err  error
}

// applyKind is the second pass for one kind: its rows in batches, one transaction each, applied
// by as many workers as there are connections. Batches of one kind are independent (distinct
// rows; parents were applied before), so their order does not matter. Dispatch stops at a
// cancellation or at the first failed batch; batches under way finish.
func (im *importer) applyKind(ctx context.Context, conns []*sqlx.Conn, sp *rowSpool) error {
	st := stages[sp.kind]
	rd, err := sp.reader()
	if err != nil {
		return err
	}
	idle := make(chan *sqlx.Conn, len(conns))
	for _, c := range conns {
		idle <- c
	}
	results := make(chan outcome, len(conns))
	inflight := 0
	eof, stop := false, false
	var firstErr error
	var next []*feed.Row
	for {
		if next == nil && !eof && !stop {
			next, err = im.readBatch(rd)
			if err != nil {
				firstErr, stop = err, true
			} else if len(next) == 0 {
				next, eof = nil, true
			}
		}
		if next == nil && inflight == 0 {
			break
		}
		var take chan *sqlx.Conn // nil (never ready) when there is nothing to dispatch
		if next != nil {
			take = idle
		}
		select {
		case conn := <-take:
			if ctx.Err() != nil {
				idle <- conn
				next, stop = nil, true
				if firstErr == nil {
					firstErr = im.cancelled(ctx)
				}
				continue
			}
			inflight++
			go func(batch []*feed.Row) {
				res, err := im.applyBatch(ctx, conn, st, batch)
				if err != nil {
					err = fmt.Errorf("apply %d %s rows (lines %d to %d): %w", len(batch), sp.kind, batch[0].Line, batch[len(batch)-1].Line, err)
				}
				idle <- conn
				results <- outcome{kind: sp.kind, rows: int64(len(batch)), res: res, err: err}
			}(next)
			next = nil
		case o := <-results:
			inflight--
			if o.err != nil {
				if firstErr == nil || errors.Is(firstErr, errCancelled) {
					firstErr = o.err
				}
				next, stop = nil, true
				continue
			}
			im.account(o)
			if len(im.issues) >= 1000 || (inflight == 0 && len(im.issues) > 0) {
				conn := <-idle
				err := im.flushIssues(context.WithoutCancel(ctx), conn)
				idle <- conn
				if err != nil && firstErr == nil {
					firstErr, next, stop = err, nil, true
				}
			}
		}
	}
	return firstErr
}

// readBatch reads up to BatchSize rows from a spool (none at its end).
func (im *importer) readBatch(rd *spoolReader) ([]*feed.Row, error) {
	batch := make([]*feed.Row, 0, min(im.o.BatchSize, 1<<16))
	for len(batch) < im.o.BatchSize {
		r, err := rd.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		batch = append(batch, r)
	}
	return batch, nil
}

// account adds a committed batch to the summary and reports progress.
func (im *importer) account(o outcome) {
	res, kc := o.res, im.sum.Kinds[o.kind]
	im.sum.Created += res.created
	im.sum.Updated += res.updated
	im.sum.Unchanged += res.unchanged
	im.sum.RowsOK += res.created + res.updated + res.unchanged
	im.sum.RowsFailed += res.failed
	kc.Created += res.created
	kc.Updated += res.updated
	kc.Unchanged += res.unchanged
	kc.Failed += res.failed
	im.issues = append(im.issues, res.issues...)
	im.done += o.rows
	im.log.Debug("batch applied", "kind", o.kind, "rows", o.rows, "created", res.created,
		"updated", res.updated, "unchanged", res.unchanged, "failed", res.failed)
	if im.o.Progress != nil && time.Since(im.lastProgress) >= progressInterval {
		im.lastProgress = time.Now()
		im.o.Progress(im.done, im.sum.RowsTotal)
	}
}

// applyBatch applies one batch in one transaction, to its end even when ctx is cancelled. When
// the database refuses a row, the batch is redone with the faulty rows isolated; a
// serialization failure or deadlock is retried.
func (im *importer) applyBatch(ctx context.Context, conn *sqlx.Conn, st stage, rows []*feed.Row) (batchResult, error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		res, err := im.tryBatch(bctx, conn, st, rows, false)
		if _, ok := isRowError(err); ok {
			im.log.Debug("the database refused a row; isolating it", "table", st.table, "err", err)
			res, err = im.tryBatch(bctx, conn, st, rows, true)
		}
		if err != nil && isRetryable(err) && attempt < 3 {
			im.log.Warn("batch conflicted with another transaction; retrying", "table", st.table, "attempt", attempt, "err", err)
			continue
		}
		return res, err
	}
}

func (im *importer) tryBatch(ctx context.Context, conn *sqlx.Conn, st stage, rows []*feed.Row, isolate bool) (batchResult, error) {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return batchResult{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, batchSettings); err != nil {
		return batchResult{}, fmt.Errorf("batch settings: %w", err)
	}
	var res batchResult
	if isolate {
		res, err = bisect(ctx, tx, st, rows)
	} else {
		res, err = stageAndUpsert(ctx, tx, st, rows)
	}
	if err != nil {
		return batchResult{}, err
	}
	if err := tx.Commit(); err != nil {
		return batchResult{}, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// txBeginner is a *sqlx.DB or a *sqlx.Conn.
type txBeginner interface {
	BeginTxx(ctx context.Context, opts *sql.TxOptions) (*sqlx.Tx, error)
}

// flushIssues writes the pending issues to import_errors in one transaction.
func (im *importer) flushIssues(ctx context.Context, b txBeginner) error {
	if len(im.issues) == 0 {
		return nil
	}
	err := func() error {
		tx, err := b.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		stmt, err := tx.PrepareContext(ctx, "COPY import_errors (run_id, line, kind, external_id, field, reason, raw) FROM STDIN")
		if err != nil {
			return err
		}
		defer stmt.Close()
		null := func(s string, max int) any {
			if s == "" {
				return nil
			}
			return feed.SafeText(s, max)
		}
		for _, is := range im.issues {
			if _, err := stmt.ExecContext(ctx, im.sum.RunID, max(is.Line, 1), null(string(is.Kind), 32),
				null(is.ExternalID, 256), null(is.Field, 200), feed.SafeText(is.Reason, 4000), null(is.Raw, feed.MaxRawBytes)); err != nil {
				return err
			}
		}
		if _, err := stmt.ExecContext(ctx); err != nil {
			return err
		}
		if err := stmt.Close(); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("record %d row errors in import_errors: %w", len(im.issues), err)
	}
	im.issues = im.issues[:0]
	return nil
}
