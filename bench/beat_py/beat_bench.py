"""Helpers of bench/beat.sh (run with /usr/bin/python3, Debian's Celery 5.2).

  beat_bench.py config N QUEUE PREFIX MODE > celeryconfig.yaml   the Go beat's config: N entries
  beat_bench.py consume QUEUE SECONDS                        lateness of every message received
  beat_bench.py stats NAME < lateness.txt                    p50/p99/max of the lateness (ms)
  beat_bench.py cpu PID SECONDS                              CPU seconds a process used over SECONDS

The Python beat reads beatbench.py (same schedule, built from BEAT_N and BEAT_QUEUE).
MODE burst: every entry is crontab(minute='*'): all N are due on every minute boundary, so the
lateness of a message is its arrival time minus the minute it arrived in, the same for both beats.

MODE spread: entry i is an interval of period(i) seconds (10 to 20 s in 500 steps): about N/15 runs a
second, a steady load. Lateness is arrival minus due. The Go beat's due is exact: the slot it puts in
the beat_slot header. celery beat counts an interval from when it last sent the entry, so its due is
the previous arrival of the entry plus the period (its first send of each entry is not counted).
"""
import json
import os
import sys
import time


def period(i):
    """The spread mode's interval of entry i, in seconds."""
    return 10 + (i % 500) * 0.02


def config(n, queue, prefix, mode):
    print(f"broker_url: {os.environ.get('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672//')}")
    print(f"task_default_queue: {queue}")
    print(f"beat_key_prefix: '{prefix}'")
    print("beat_schedule:")
    for i in range(n):
        if mode == "spread":
            print(f"  e{i}: {{task: bench.noop, schedule: {period(i):.2f}, args: [{i}, {period(i):.2f}]}}")
        else:
            print(f"  e{i}: {{task: bench.noop, schedule: {{crontab: {{minute: '*'}}}}, args: [{i}]}}")


def consume(queue, seconds):
    import amqp
    conn = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, auto_delete=False)

    prev = {}

    def on(msg):
        now = time.time()
        headers = msg.properties.get("application_headers") or {}
        args = json.loads(msg.body)[0]
        if "beat_slot" in headers:  # the Go beat: the exact due time
            due = int(headers["beat_slot"]) / 1000
        elif len(args) == 2:  # celery beat, spread: due = its last send of the entry + the period
            last, prev[args[0]] = prev.get(args[0]), now
            if last is None:
                print("first", flush=False)  # counted as an arrival, not measured
                return
            due = last + args[1]
        else:  # burst: due on the minute
            due = (now // 60) * 60
        print(f"{(now - due) * 1000:.1f}", flush=False)

    # no_ack: the consumer must not be what delays the messages.
    tag = ch.basic_consume(queue, callback=on, no_ack=True)
    end = time.time() + seconds
    while time.time() < end:
        try:
            conn.drain_events(timeout=1)
        except Exception:  # socket.timeout
            pass
    sys.stdout.flush()
    try:
        ch.basic_cancel(tag)
        ch.queue_delete(queue)
        conn.close()
    except Exception as e:  # the report matters more than a clean close
        print(f"consume: closing: {e!r}", file=sys.stderr)


def stats(name):
    lines = [x.strip() for x in sys.stdin if x.strip()]
    firsts = sum(1 for x in lines if x == "first")
    xs = sorted(float(x) for x in lines if x != "first")
    arrivals = f" ({len(lines)} arrived, {firsts} first sends not measured)" if firsts else ""
    if not xs:
        print(f"{name}: no lateness measured{arrivals}")
        return
    # A message arriving more than 30 s after its minute is counted as late by that much, not early.
    pct = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    print(f"{name}: {len(xs)} messages, lateness p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {xs[-1]:.1f} ms{arrivals}")


def cpu(pid, seconds):
    def ticks():
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])
    a = ticks()
    time.sleep(seconds)
    b = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = [l.split()[1] for l in f if l.startswith("VmRSS")][0]
    print(f"cpu {(b - a) / hz:.2f} s over {seconds:g} s, rss {int(rss) // 1024} MiB")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "config":
        config(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "consume":
        consume(sys.argv[2], float(sys.argv[3]))
    elif cmd == "stats":
        stats(sys.argv[2])
    elif cmd == "cpu":
        cpu(int(sys.argv[2]), float(sys.argv[3]))
