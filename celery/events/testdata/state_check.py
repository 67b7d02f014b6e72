"""Feeds the events of one node to celery.events.state.State, as Flower does, and prints what
State makes of them.

    PYTHONPATH=. python3 state_check.py NODENAME TIMEOUT

Only events whose hostname is NODENAME count. Output, one line each:

    PROBE                    when the first "gotest-probe" event arrives (the queue is consuming)
    {"snapshot": {...}}      on a "gotest-snapshot" event
    {"final": {...}}         on a "gotest-done" event; then the script exits 0

A snapshot is {"worker": {alive, status, active, processed, freq, loadavg, sw_ident, sw_ver, sw_sys,
pid, clock, heartbeats} or null, "tasks": {uuid: {state, name, args, kwargs, result, exception,
traceback, runtime, retries, root_id, eta, client, worker}}}. With no event for TIMEOUT seconds it
prints {"error": "timeout"} and exits 1.
"""

import json
import socket
import sys

from celery.events.state import State

from evapp import app

node = sys.argv[1]
timeout = float(sys.argv[2])
state = State()
probed = False


def snapshot(label):
    w = state.workers.get(node)
    worker = None
    if w is not None:
        worker = {
            "alive": w.alive, "status": w.status_string, "active": w.active, "processed": w.processed,
            "freq": w.freq, "loadavg": list(w.loadavg) if w.loadavg is not None else None,
            "sw_ident": w.sw_ident, "sw_ver": w.sw_ver, "sw_sys": w.sw_sys, "pid": w.pid,
            "clock": w.clock, "heartbeats": len(w.heartbeats),
        }
    tasks = {}
    for uuid, t in list(state.tasks.items()):
        owner = t.worker.hostname if t.worker is not None else None
        if owner != node and t.client != node:
            continue
        tasks[uuid] = {
            "state": t.state, "name": t.name, "args": t.args, "kwargs": t.kwargs, "result": t.result,
            "exception": t.exception, "traceback": t.traceback, "runtime": t.runtime,
            "retries": t.retries, "root_id": t.root_id, "eta": t.eta, "client": t.client, "worker": owner,
        }
    print(json.dumps({label: {"worker": worker, "tasks": tasks}}), flush=True)


def on_event(event):
    global probed
    if event.get("hostname") != node:
        return
    kind = event.get("type")
    if kind == "gotest-probe":
        if not probed:
            probed = True
            print("PROBE", flush=True)
    elif kind == "gotest-snapshot":
        snapshot("snapshot")
    elif kind == "gotest-done":
        snapshot("final")
        receiver.should_stop = True
    else:
        state.event(event)


with app.connection_for_read() as conn:
    receiver = app.events.Receiver(conn, handlers={"*": on_event})
    try:
        receiver.capture(limit=None, timeout=timeout, wakeup=False)
    except socket.timeout:
        print(json.dumps({"error": "timeout"}), flush=True)
        sys.exit(1)
