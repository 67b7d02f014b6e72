"""Python side of the operations interop tests (ops_test.go): a Celery 5.2 app for Celery's own
command line against Go workers, and a tiny client.

    python3 -m celery -A opsapp inspect ping -d celery@gotest-xxxx     (PYTHONPATH = this directory)
    python3 -m celery -A opsapp events --dump
    python3 opsapp.py send NAME ARGS_JSON OPTIONS_JSON    prints the task id (OPTIONS: apply_async's)
    python3 opsapp.py state ID [WAIT_SECONDS]             waits until the task is ready (or the time
                                                          is up), prints {"state", "exc", "args"} or
                                                          {"state", "result"} as AsyncResult shows it

BROKER_URL and BACKEND_URL come from the environment.
"""

import json
import os
import sys
import time

from celery import Celery

app = Celery("opsapp", broker=os.environ["BROKER_URL"], backend=os.environ["BACKEND_URL"])
app.conf.update(broker_connection_max_retries=3, result_expires=3600)


def main(argv):
    if len(argv) >= 5 and argv[1] == "send":
        r = app.send_task(argv[2], args=json.loads(argv[3]), **json.loads(argv[4]))
        print(r.id)
        return 0
    if len(argv) >= 3 and argv[1] == "state":
        r = app.AsyncResult(argv[2])
        deadline = time.time() + (float(argv[3]) if len(argv) > 3 else 0)
        while not r.ready() and time.time() < deadline:
            time.sleep(0.05)
        out = {"state": r.state}
        if isinstance(r.result, BaseException):
            out["exc"] = type(r.result).__name__
            out["args"] = [str(a) for a in r.result.args]
        else:
            out["result"] = r.result
        print(json.dumps(out))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
