"""Helpers of bench/beatdb.sh (run with /usr/bin/python3: Debian's Django 3.2, Celery 5.2 and
django-celery-beat 2.4), in the example Django project with DJANGO_DATABASE_URL set.

  beatdb_bench.py schema create|drop SCHEMA     the bench's own schema in DATABASE_URL's database
  beatdb_bench.py rows N                        N interval PeriodicTasks made through the models
  beatdb_bench.py reset                         every row back to never run
  beatdb_bench.py beat                          Python's DatabaseScheduler, counting its SQL statements
  beatdb_bench.py consume QUEUE SECONDS         one line per message: arrival, entry, period, beat_slot
  beatdb_bench.py stats NAME T0 END N < lines   sent, due, lateness p50/p99/max

Entry i runs every period(i) seconds (60 to 120 s in 500 steps, as an IntervalSchedule in
microseconds), args [i, period(i)]. Lateness is arrival minus due. The Go beat's due is exact: the
beat_slot header. Python's DatabaseScheduler counts a row that never ran from when it read it, so
its first due is taken as T0 (the moment the process started: a lower bound, which favours Python)
plus the period, and each later due as its previous send plus the period. "due" is how many runs
fell due by END counting from T0 (sum over entries of (END - T0) // period).
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


def consume(queue, seconds):
    import json
    import amqp
    conn = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, auto_delete=False)
    out = []

    def on(msg):
        now = time.time()
        headers = msg.properties.get("application_headers") or {}
        args = json.loads(msg.body)[0]
        out.append(f"{now:.6f} {args[0]} {args[1]} {headers.get('beat_slot', '-')}")

    tag = ch.basic_consume(queue, callback=on, no_ack=True)
    end = time.time() + seconds
    while time.time() < end:
        try:
            conn.drain_events(timeout=1)
        except Exception:  # socket.timeout
            pass
    print("\n".join(out))
    try:
        ch.basic_cancel(tag)
        ch.queue_delete(queue)
        conn.close()
    except Exception as e:
        print(f"consume: closing: {e!r}", file=sys.stderr)


def stats(name, t0, end, n):
    prev, late = {}, []
    sent = 0
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 4:
            continue
        arrival, i, per, slot = float(parts[0]), int(parts[1]), float(parts[2]), parts[3]
        sent += 1
        if slot != "-":
            due = int(slot) / 1000
        else:
            due = prev.get(i, t0) + per
            prev[i] = arrival
        late.append((arrival - due) * 1000)
    due_runs = sum(int((end - t0) // period(i)) for i in range(n))
    if not late:
        print(f"{name}: sent 0 runs; {due_runs} were due")
        return
    late.sort()
    pct = lambda p: late[min(len(late) - 1, int(p * len(late)))]
    print(f"{name}: sent {sent} runs in {end - t0:.0f} s ({due_runs} due from its start); lateness "
          f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {late[-1]:.1f} ms")


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
    elif cmd == "consume":
        consume(sys.argv[2], float(sys.argv[3]))
    elif cmd == "stats":
        stats(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
