"""Helpers of bench/beat.sh (run with /usr/bin/python3, Debian's Celery 5.2).

  beat_bench.py config N QUEUE PREFIX > celeryconfig.yaml   the Go beat's config: N crontab entries
  beat_bench.py consume QUEUE SECONDS                        lateness of every message received
  beat_bench.py stats NAME < lateness.txt                    p50/p99/max of the lateness (ms)
  beat_bench.py cpu PID SECONDS                              CPU seconds a process used over SECONDS

The Python beat reads beatbench.py (same schedule, built from BEAT_N and BEAT_QUEUE).
Every entry is crontab(minute='*'): each one is due on every minute boundary, so the lateness of a
message is its arrival time minus the minute it arrived in, the same measure for both beats.
"""
import os
import sys
import time


def config(n, queue, prefix):
    print(f"broker_url: {os.environ.get('AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672//')}")
    print(f"task_default_queue: {queue}")
    print(f"beat_key_prefix: '{prefix}'")
    print("beat_schedule:")
    for i in range(n):
        print(f"  e{i}: {{task: bench.noop, schedule: {{crontab: {{minute: '*'}}}}, args: [{i}]}}")


def consume(queue, seconds):
    import amqp
    conn = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, auto_delete=False)

    def on(msg):
        now = time.time()
        print(f"{(now - (now // 60) * 60) * 1000:.1f}", flush=False)

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
    xs = sorted(float(x) for x in sys.stdin if x.strip())
    if not xs:
        print(f"{name}: no messages")
        return
    # A message arriving more than 30 s after its minute is counted as late by that much, not early.
    pct = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]
    print(f"{name}: {len(xs)} messages, lateness p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {xs[-1]:.1f} ms")


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
    print(f"cpu {(b - a) / hz:.2f} s over {seconds} s idle, rss {int(rss) // 1024} MiB")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "config":
        config(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif cmd == "consume":
        consume(sys.argv[2], float(sys.argv[3]))
    elif cmd == "stats":
        stats(sys.argv[2])
    elif cmd == "cpu":
        cpu(int(sys.argv[2]), float(sys.argv[3]))
