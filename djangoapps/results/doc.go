// Package results is the django-db result backend: it keeps task states in the tables of
// django-celery-results 2.4 (django_celery_results_taskresult, _groupresult and _chordcounter) on
// PostgreSQL, written exactly as Python Celery 5.2 with django-celery-results writes them, so that
// the Django admin lists the Go worker's results and AsyncResult(id).get() works on the Python side
// with result_backend = 'django-db'.
//
// [Backend] implements backend.Backend (results, chord counters, saved groups); wiring picks it
// for result_backend: django-db, connecting to database_url. The tables are the ones `manage.py
// migrate django_celery_results` creates; [Open] refuses to start when they are missing.
//
// # Rows
//
// A task result row holds what DatabaseBackend._store_result stores: status; result, the
// JSON-encoded return value or exception object (content_type application/json, content_encoding
// utf-8); meta, {"children": [...]}; date_created when the row is first written and date_done at
// every write (Django's auto_now_add and auto_now). With result_extended (a meta with Extended
// set) also task_name, worker, traceback, periodic_task_name and task_args/task_kwargs: the
// request's argsrepr/kwargsrepr strings JSON-encoded (the args list and kwargs object for a
// message without them, as for protocol 1). Without result_extended those columns are NULL — the
// traceback too, as django-celery-results 2.4 writes it. The table has no group_id or parent_id
// column, so [Backend.Get] reports neither (Python's django-db backend does not either).
//
// Unlike django-celery-results (which overwrites any row), a stored SUCCESS is never replaced, as
// backend.ResultBackend requires: a late or duplicate write is refused with
// backend.ErrAlreadySucceeded in the same statement (INSERT … ON CONFLICT … WHERE status <>
// 'SUCCESS').
//
// # Waiting
//
// [Backend.Wait] polls the row, as Celery's database backends do (every Options.PollInterval,
// default 0.5 s, AsyncResult.get's interval).
//
// # Groups and chords
//
// A saved group is a _groupresult row whose result is GroupResult.as_tuple() JSON-encoded:
// [[gid, null], [[[id, null], null], …]]. A chord counter is a _chordcounter row locked with SELECT
// … FOR UPDATE while a part is counted. A counter created by a Python client (apply_chord) lists
// the header's result tuples in sub_tasks and counts down in count, as the Python worker expects;
// the Go worker counts such a chord exactly as the Python one does. A counter created by
// [Backend.SetChordSize] (the Go client knows only the size) starts with sub_tasks holding size
// nulls, and each counted part writes its result tuple into its group_index slot; a part whose id
// is already there (a redelivery) is not counted again. Either way the chord completes when count
// reaches 0; the header results are then read from the task result rows in header order (the
// saved group's order when the group was saved), and the counter row is deleted. A chord set up
// by the Go client is meant to be completed by Go workers: a Python worker that counts its last
// part finds a null slot in sub_tasks.
//
// # Expiry
//
// Rows do not expire by themselves, as with django-celery-results: [Backend.Cleanup] deletes
// results older than result_expires, as Celery's celery.backend_cleanup task does.
package results
