"""Helpers of bench/beatdb.sh (run with /usr/bin/python3: Debian's Django 3.2, Celery 5.2 and
django-celery-beat 2.4), in the example Django project with DJANGO_DATABASE_URL set.

  beatdb_bench.py schema create|drop SCHEMA     the bench's own schema in DATABASE_URL's database
  beatdb_bench.py rows N                        N interval PeriodicTasks made through the models
  beatdb_bench.py reset                         every row back to never run
  beatdb_bench.py beat                          Python's DatabaseScheduler, counting its SQL statements

Entry i runs every period(i) seconds (60 to 120 s in 500 steps, as an IntervalSchedule in
microseconds), args [i, period(i)]: bench/beat_py/beat_bench.py consume measures Python's lateness
as the entry's previous arrival plus the period (the Go beat's from its beat_slot header).
"""
import os
import sys
import time


def period(i):
    return 60 + (i % 500) * 0.12


def schema(action, name):
    import psycopg2
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    conn.autocommit = True
    with conn.cursor() as cur:
        if action == "create":
            cur.execute(f'CREATE SCHEMA "{name}"')
        else:
            cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    conn.close()


def django_setup():
    import django
    sys.path.insert(0, os.getcwd())
    django.setup()


def rows(n):
    django_setup()
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
    scheds = {}
    for k in range(500):
        us = round(period(k) * 1_000_000)
        scheds[k], _ = IntervalSchedule.objects.get_or_create(every=us, period=IntervalSchedule.MICROSECONDS)
    PeriodicTask.objects.bulk_create(
        [PeriodicTask(name=f"e{i}", task="bench.noop", interval=scheds[i % 500], args=f"[{i}, {period(i):.2f}]")
         for i in range(n)], batch_size=2000)
    PeriodicTasks.update_changed()
    print(f"{PeriodicTask.objects.count()} periodic tasks", file=sys.stderr)


def reset():
    django_setup()
    from django_celery_beat.models import PeriodicTask, PeriodicTasks
    PeriodicTask.objects.update(last_run_at=None, total_run_count=0)
    PeriodicTasks.update_changed()


def beat():
    django_setup()
    import atexit
    from django.db.backends.signals import connection_created
    count = [0]

    def counted(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    def on_connection(sender, connection, **kwargs):
        if counted not in connection.execute_wrappers:
            connection.execute_wrappers.append(counted)

    connection_created.connect(on_connection)
    start = time.time()
    atexit.register(lambda: print(f"python beat: database scheduler: {count[0]} SQL statements in "
                                  f"{time.time() - start:.1f} s", file=sys.stderr, flush=True))
    from forumads_site.celery import app
    app.Beat(scheduler="django_celery_beat.schedulers:DatabaseScheduler", loglevel="WARNING").run()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "schema":
        schema(sys.argv[2], sys.argv[3])
    elif cmd == "rows":
        rows(int(sys.argv[2]))
    elif cmd == "reset":
        reset()
    elif cmd == "beat":
        beat()
