"""pytest plugin of scripts/celery-suite.sh: Celery's own integration suite (t/integration) with
its session worker replaced by an external worker process.

The suite's conftest.py imports ``celery_session_worker`` from ``celery.contrib.pytest``; this
plugin is loaded first (``-p celery_suite_plugin``) and puts its own fixture of that name there,
so the suite runs unchanged and only its worker differs:

* ``SUITE_WORKER=go`` (default): the Go worker binary ``SUITE_GO_WORKER`` with ``--suite-tasks``
  (the suite's task set, package internal/celerysuite);
* ``SUITE_WORKER=python``: Celery's own worker (``python3 -m celery worker``, prefork), the
  reference run. (Celery's in-process session worker cannot start on Debian 12's Python 3.11,
  see the suite's README, so the reference is an external process too.)

Either worker is named as Celery's in-process session worker would be
(``celery.utils.nodenames.anon_nodename()`` of this process, ``gen<pid>@<host>``), consumes the
``celery`` queue plus ``SUITE_QUEUES``, uses the suite's TEST_BROKER / TEST_BACKEND, and is
ready once it answers a remote-control ping and runs ``celery.ping``, as Celery's fixture checks.
``SUITE_TEST_TIMEOUT`` (seconds) caps every test's pytest-timeout, the suite's own 300 s marks
included.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

import celery.contrib.pytest as celery_pytest

WORKER = os.environ.get("SUITE_WORKER", "go")
START_TIMEOUT = float(os.environ.get("SUITE_START_TIMEOUT", "60"))


class ExternalWorker:
    """What the replaced fixture yields: the worker's node name and process."""

    def __init__(self, hostname, proc, log_path):
        self.hostname = hostname
        self.proc = proc
        self.log_path = log_path


def _queues():
    qs = ["celery"]
    for q in os.environ.get("SUITE_QUEUES", "").split(","):
        q = q.strip()
        if q and q not in qs:
            qs.append(q)
    return qs


def _command(hostname, queues):
    concurrency = os.environ.get("SUITE_CONCURRENCY", "1")
    if WORKER == "go":
        binary = os.environ.get("SUITE_GO_WORKER")
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError("SUITE_GO_WORKER must name the built Go worker binary, got %r" % binary)
        cmd = [binary, "--suite-tasks", "-n", hostname, "-Q", ",".join(queues), "-c", concurrency,
               "--without-heartbeat", "--without-mingle", "--metrics-addr", "", "-l", "info"]
        cfg = os.environ.get("SUITE_GO_CONFIG")
        if cfg:
            cmd += ["--config", cfg]
        return cmd
    if WORKER == "python":
        return [sys.executable, "-m", "celery", "-A", "celery_suite_app", "worker", "-P", "prefork",
                "-c", concurrency, "-n", hostname, "-Q", ",".join(queues), "--without-heartbeat",
                "--without-mingle", "--without-gossip", "-l", "info"]
    raise RuntimeError("SUITE_WORKER must be go or python, got %r" % WORKER)


def _wait_ready(app, w):
    """Wait until the worker answers ping by name and has run celery.ping."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if w.proc.poll() is not None:
            raise RuntimeError("the %s worker exited with %s before answering ping; its log: %s"
                               % (WORKER, w.proc.returncode, w.log_path))
        replies = app.control.ping(destination=[w.hostname], timeout=1.0)
        if any(w.hostname in r for r in replies):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the %s worker %s did not answer ping within %ss; its log: %s"
                               % (WORKER, w.hostname, START_TIMEOUT, w.log_path))
    from celery.contrib.testing.tasks import ping
    from celery.result import allow_join_result
    with allow_join_result():
        assert ping.delay().get(timeout=START_TIMEOUT) == "pong"


def _stop(w):
    if w.proc.poll() is None:
        w.proc.send_signal(signal.SIGTERM)
        try:
            w.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


@pytest.fixture(scope="session")
def celery_session_worker(request, celery_session_app, celery_includes, celery_class_tasks,
                          celery_worker_pool, celery_worker_parameters):
    """The suite's session worker, as an external Go or Python worker process."""
    from celery.utils.nodenames import anon_nodename

    # What Celery's fixture does in the test process: the signatures need the tasks registered.
    for module in celery_includes:
        celery_session_app.loader.import_task_module(module)
    for class_task in celery_class_tasks:
        celery_session_app.tasks.register(class_task)
    hostname = anon_nodename()
    log_dir = os.environ.get("SUITE_LOG_DIR", ".")
    log_path = os.path.join(log_dir, "worker-%s.log" % WORKER)
    log = open(log_path, "ab")
    proc = subprocess.Popen(_command(hostname, _queues()), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    log.close()
    w = ExternalWorker(hostname, proc, log_path)
    try:
        _wait_ready(celery_session_app, w)
    except BaseException:
        _stop(w)
        raise
    yield w
    _stop(w)
    if proc.returncode not in (0, None):
        print("the %s worker exited with %s (log: %s)" % (WORKER, proc.returncode, log_path))


@pytest.fixture(scope="session", autouse=True)
def _suite_worker_for_every_test(celery_session_worker):
    """The worker lives through the whole session, so that tests that call tasks without asking
    for a fixture (test_link_error, test_task_retried, ...) have one too."""
    yield celery_session_worker


# The suite's conftest.py does `from celery.contrib.pytest import celery_session_worker`.
celery_pytest.celery_session_worker = celery_session_worker


def pytest_collection_modifyitems(config, items):
    """Cap every test's timeout at SUITE_TEST_TIMEOUT seconds (the suite marks many with 300)."""
    cap = os.environ.get("SUITE_TEST_TIMEOUT")
    if not cap:
        return
    cap = float(cap)
    for item in items:
        m = item.get_closest_marker("timeout")
        current = None
        if m is not None:
            current = m.kwargs.get("timeout", m.args[0] if m.args else None)
        if current is None or float(current) > cap:
            item.add_marker(pytest.mark.timeout(timeout=cap), append=False)
