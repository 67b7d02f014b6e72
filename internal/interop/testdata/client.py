"""Python side of the interop tests: a Celery 5.2 client driving the Go worker.

usage: python3 client.py CASE

Parameters come from the environment:

  BROKER_URL, BACKEND_URL  the RabbitMQ and Redis the Go worker uses
  QUEUE                    a queue the Go worker consumes
  PROTOCOL                 task message protocol, 1 or 2 (default 2)
  GET_TIMEOUT              seconds AsyncResult.get() waits (default 20)
  DLQ                      the Go worker's dead-letter queue (cases unknown, pickle)
  PRIORITY_QUEUE           a queue the Go worker declares with x-max-priority 10 (case priority)
  PAYLOAD_FILE             JSON object sent as kwargs (case echo)
  FLAKY_KEY                Redis key counting diag.flaky's attempts (case flaky)

Output: a line {"sent": "<task id>"} for every task sent (so the caller can delete the results),
then one line {"report": {...}} with what Celery observed. The script only observes: the Go test
decides what is right. An unexpected exception ends it with a traceback and status 1.
"""

import json
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

from celery import Celery
from kombu import Exchange, Queue

BROKER_URL = os.environ["BROKER_URL"]
BACKEND_URL = os.environ["BACKEND_URL"]
QUEUE = os.environ["QUEUE"]
GET_TIMEOUT = float(os.environ.get("GET_TIMEOUT", "20"))

app = Celery("interop-client", broker=BROKER_URL, backend=BACKEND_URL)
app.conf.task_protocol = int(os.environ.get("PROTOCOL", "2"))
app.conf.broker_connection_max_retries = 3


def emit(**kv):
    print(json.dumps(kv), flush=True)


def send(name, *, args=None, kwargs=None, queue=QUEUE, **options):
    r = app.send_task(name, args=args, kwargs=kwargs, queue=queue, **options)
    emit(sent=r.id)
    return r


def describe_exc(e):
    return {"class": type(e).__name__, "module": type(e).__module__, "str": str(e),
            "args": [repr(a) for a in e.args], "is_exception": isinstance(e, Exception)}


def get(r):
    """Waits for r; returns (value, None) or (None, the exception get() raised)."""
    try:
        return r.get(timeout=GET_TIMEOUT), None
    except Exception as e:  # noqa: BLE001 - reporting is the point
        return None, e


def outcome(r):
    """Everything a Django caller can read from an AsyncResult, after waiting for it."""
    value, exc = get(r)
    out = {"id": r.id, "value": value, "raised": describe_exc(exc) if exc else None, "state": r.state}
    if exc is not None:
        return out
    dd = r.date_done
    out.update(successful=r.successful(), result=r.result, ready=r.ready(),
               date_done_type=type(dd).__name__, date_done=dd.isoformat() if dd is not None else None)
    return out


def utcnow():
    """Now in UTC, naive, as AsyncResult.date_done is."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def case_add():
    return {"send_task": outcome(send("diag.add", args=[2, 3])),
            "send_task_kwargs": outcome(send("diag.add", kwargs={"x": 2, "y": 3}))}


def case_apply_async():
    @app.task(name="diag.add")
    def add(x, y):
        raise AssertionError("diag.add runs on the Go worker, never in this client")

    r1 = add.apply_async((2, 3), queue=QUEUE)
    emit(sent=r1.id)
    r2 = add.apply_async(kwargs={"x": 40, "y": 2}, queue=QUEUE)
    emit(sent=r2.id)
    return {"args": outcome(r1), "kwargs": outcome(r2)}


def case_echo():
    with open(os.environ["PAYLOAD_FILE"], encoding="utf-8") as f:
        payload = json.load(f)
    r = send("diag.echo", args=[1, "a"], kwargs=payload)
    value, exc = get(r)
    if exc is not None:
        return {"raised": describe_exc(exc), "state": r.state}
    return {"equal": value == {"args": [1, "a"], "kwargs": payload}, "value": value, "state": r.state}


def case_countdown():
    start = time.monotonic()
    not_before = utcnow() + timedelta(seconds=2)
    r = send("diag.add", args=[20, 22], countdown=2)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    early_state = r.state
    early_elapsed = time.monotonic() - start  # measured after the read: the read ended before this
    out = outcome(r)
    out.update(early_state=early_state, early_elapsed=early_elapsed,
               not_before=not_before.isoformat(),
               ran_after_eta=out["date_done"] is not None and r.date_done >= not_before)
    return out


def case_eta_offset():
    plus2 = timezone(timedelta(hours=2))
    eta = datetime.now(plus2) + timedelta(seconds=2)
    r = send("diag.add", args=[1, 1], eta=eta)
    out = outcome(r)
    not_before = eta.astimezone(timezone.utc).replace(tzinfo=None)
    out.update(eta=eta.isoformat(), not_before=not_before.isoformat(),
               ran_after_eta=out["date_done"] is not None and r.date_done >= not_before)
    return out


def case_expires_past():
    return outcome(send("diag.add", args=[1, 2], expires=datetime.now(timezone.utc) - timedelta(seconds=30)))


def case_expires_before_countdown():
    return outcome(send("diag.add", args=[1, 2], countdown=3, expires=1))


def case_retries():
    r = send("diag.add", args=[1, 2], retries=3)
    out = outcome(r)
    ar = app.AsyncResult(r.id)
    out.update(retries=ar.retries, name=ar.name, args=ar.args, kwargs=ar.kwargs, queue=ar.queue,
               worker=ar.worker)
    return out


def case_priority():
    pq = os.environ["PRIORITY_QUEUE"]
    app.conf.task_queues = [Queue(pq, Exchange(pq, type="direct"), routing_key=pq,
                                  queue_arguments={"x-max-priority": 10})]
    plain = send("diag.add", args=[3, 4], priority=7)
    prio = send("diag.add", args=[5, 6], queue=pq, priority=7)
    return {"plain_queue": outcome(plain), "priority_queue": outcome(prio)}


def case_task_id():
    tid = str(uuid.uuid4())
    r = send("diag.add", args=[7, 8], task_id=tid)
    out = outcome(r)
    fresh = app.AsyncResult(tid)
    out.update(wanted_id=tid, fresh_state=fresh.state, fresh_result=fresh.result)
    return out


def case_fail():
    r = send("diag.fail", args=["boom"])
    out = outcome(r)
    tb = r.traceback
    out.update(failed=r.failed(), traceback_type=type(tb).__name__, traceback=tb,
               result_is_exception=isinstance(r.result, Exception),
               result_exc=describe_exc(r.result) if isinstance(r.result, BaseException) else None)
    return out


def case_flaky():
    r = send("diag.flaky", args=[os.environ["FLAKY_KEY"], 2])
    seen = []
    deadline = time.monotonic() + GET_TIMEOUT
    while time.monotonic() < deadline:
        state = r.state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("SUCCESS", "FAILURE", "REVOKED"):
            break
        time.sleep(0.02)
    out = outcome(r)
    out.update(states=seen, retries=app.AsyncResult(r.id).retries)
    return out


def dead_letter(task_id):
    """Takes the message of task_id from the dead-letter queue (py-amqp basic_get), leaving others."""
    deadline = time.monotonic() + GET_TIMEOUT
    with app.connection_for_write() as conn:
        ch = conn.channel()
        while time.monotonic() < deadline:
            others, found = [], None
            while True:
                m = ch.basic_get(queue=os.environ["DLQ"], no_ack=False)
                if m is None:
                    break
                if m.properties.get("correlation_id") == task_id:
                    found = m
                    ch.basic_ack(m.delivery_tag)
                    break
                others.append(m)
            for m in others:
                ch.basic_reject(m.delivery_tag, requeue=True)
            if found is not None:
                props = {k: v for k, v in found.properties.items() if k != "application_headers"}
                # kombu's Redis transport keeps the content type beside the properties, py-amqp in them.
                props.setdefault("content_type", found.content_type)
                return {"headers": found.headers or {}, "properties": props, "body_len": len(found.body)}
            time.sleep(0.1)
    return None


def case_unknown():
    r = send("nope.missing")
    out = outcome(r)
    out["after"] = outcome(send("diag.add", args=[2, 3]))
    out["dead_letter"] = dead_letter(r.id)
    return out


def case_pickle():
    app.conf.accept_content = ["json", "pickle"]
    r = send("diag.add", args=[1, 2], serializer="pickle")
    out = outcome(r)
    out["after"] = outcome(send("diag.add", args=[2, 3]))
    out["dead_letter"] = dead_letter(r.id)
    return out


def case_big_headers():
    r = send("diag.add", args=[1, 2], headers={"x-sent-ms": 2**41, "x-neg": -2**40})
    return {"big": outcome(r), "after": outcome(send("diag.add", args=[5, 6]))}


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit("usage: client.py {%s}" % ",".join(sorted(CASES)))
    report = CASES[sys.argv[1]]()
    print(json.dumps({"report": report}, default=repr), flush=True)


if __name__ == "__main__":
    main()
