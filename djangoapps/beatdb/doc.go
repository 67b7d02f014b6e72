// Package beatdb is the Go beat's schedule on django-celery-beat 2.4's tables: what Python's
// django_celery_beat.schedulers:DatabaseScheduler reads and writes, so that schedules made in the
// Django admin run on the Go beat unchanged.
//
// [DB] is both a [beat.Source] (the enabled rows of django_celery_beat_periodictask with their
// interval, crontab, solar and clocked schedules; re-read whenever
// django_celery_beat_periodictasks.last_update moves, as the Python scheduler does) and a [beat.Store] whose slot claims are the row writes the
// Python scheduler makes: claiming a slot sets last_run_at to the slot and adds one to
// total_run_count in a single conditional UPDATE, so that however many Go beats run on the same
// tables, each slot is sent once (the row itself is the lock; no second store to keep in step with
// the database, and nothing is held between statements).
//
// At start, [DB.InstallDefaultEntries] and [DB.UpdateFromDict] write the celery.backend_cleanup
// entry and beat_schedule's entries into the tables as the Python scheduler's setup_schedule does.
//
// # Rows
//
//   - interval (every × days/hours/minutes/seconds/microseconds): slots are last_run_at + k×every;
//     a row that never ran starts on date_changed's grid at the first slot after beat read it
//     (Python starts counting when it reads the row).
//   - crontab, in the row's own time zone (CrontabSchedule.timezone).
//   - clocked: one run at clocked_time (sent at once when it is already past), one_off as the
//     model requires.
//   - solar (event, latitude, longitude): Celery's celery.schedules.solar, computed in Go
//     ([schedule.Solar], within seconds of the ephem times Python's beat uses); the first slot is
//     the first event after beat read the row (or after last_run_at).
//   - enabled=false rows are not read; one_off rows are disabled after their run exactly as
//     ModelEntry.is_due does (enabled=false, total_run_count=0, last_run_at=NULL, last_update
//     bumped); start_time holds every run back until the first slot at or after it;
//     expires/expire_seconds become the message's expires; queue, exchange, routing_key,
//     priority and headers are the publish options; args and kwargs are JSON.
//
// A row that cannot be used (invalid JSON args/kwargs/headers, an unknown or malformed task name,
// a crontab field or time zone that does not parse, a solar event Celery does not know or a
// latitude/longitude out of range, a schedule row that is missing, no schedule or more than one)
// is logged at ERROR with its id and left out; the other rows run. Every query
// is a single short statement (the start's UpdateFromDict: one short transaction per entry): the
// tables are never left locked.
package beatdb
