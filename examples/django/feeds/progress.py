"""An import's progress as the Go worker reports it through the result backend, and recording its
outcome in FeedImport once it is final.

ads.import_feed stores state PROGRESS with celery-progress's meta {"pending": False, "current": n,
"total": N, "percent", "description"} while it runs (the page's bar reads it through celery-progress's
own view; this module reads current and total for the JSON and enqueue_import --wait) and returns a
summary {"run_id", "rows_total", "rows_ok", "rows_failed", ...}; a failure is a FeedImportError.
"""
import logging

from celery.result import AsyncResult
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from forumads_site.celery import app

from .models import FINAL_STATES, FeedImport

log = logging.getLogger(__name__)

#: The most characters of an error kept (the rest is cut, with a marker).
MAX_ERROR = 2000


class BackendUnavailable(Exception):
    """The result backend could not be read (Redis is down, ...)."""


def task_status(task_id):
    """Read a task's state from the result backend.

    Returns {"task_id", "state", "ready", "current", "total"} plus "result" (SUCCESS) or "error"
    (FAILURE, REVOKED, RETRY, or a result that cannot be understood). Raises BackendUnavailable.
    """
    try:
        # What AsyncResult(task_id).state and .info read, in one round trip.
        meta = AsyncResult(task_id, app=app).backend.get_task_meta(task_id)
        state, info = meta.get("status") or "PENDING", meta.get("result")
    except (RedisError, OSError) as e:
        raise BackendUnavailable(f"the result backend cannot be read: {type(e).__name__}: {e}") from e
    except Exception as e:  # a stored result that does not decode: say so instead of failing the page
        log.warning("feeds: unreadable result for task %s: %s", task_id, e)
        return _status(task_id, "UNKNOWN", error=f"the stored result cannot be read: {type(e).__name__}: {e}")
    if not isinstance(state, str):
        return _status(task_id, "UNKNOWN", error=f"the stored state is not a string: {state!r}"[:MAX_ERROR])
    if state == "SUCCESS":
        total = info.get("rows_total") if isinstance(info, dict) else None
        if not isinstance(info, dict) or not _count(total):
            return _status(task_id, state, ready=True, result=info,
                           error=f"the import's result is not a summary with rows_total: {info!r}"[:MAX_ERROR])
        return _status(task_id, state, ready=True, current=total, total=total, result=info)
    if state in ("FAILURE", "REVOKED"):
        return _status(task_id, state, ready=True, error=_exc_text(info))
    if state == "RETRY":
        return _status(task_id, state, error="retrying after: " + _exc_text(info))
    if state == "PROGRESS":
        current = info.get("current") if isinstance(info, dict) else None
        total = info.get("total") if isinstance(info, dict) else None
        if not (_count(current) and _count(total)):
            return _status(task_id, state, error=f"malformed progress (want {{current, total}} counts): {info!r}"[:MAX_ERROR])
        return _status(task_id, state, current=current, total=total)
    return _status(task_id, state)  # PENDING, STARTED, RECEIVED or a custom state


def _status(task_id, state, ready=False, current=None, total=None, result=None, error=None):
    st = {"task_id": task_id, "state": state, "ready": ready, "current": current, "total": total}
    if result is not None:
        st["result"] = result
    if error is not None:
        st["error"] = error
    return st


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _exc_text(exc):
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = repr(exc)
    if len(text) > MAX_ERROR:
        text = text[:MAX_ERROR] + "... (cut)"
    return text


def record(feed_import, status):
    """Store a final status in feed_import (once: only the first caller records it, so the post_save
    hook sends ads.score at most once). Returns feed_import, refreshed."""
    if feed_import.is_final or not status["ready"]:
        return feed_import
    now = timezone.now()
    with transaction.atomic():
        # Claim the row first: a concurrent poller's UPDATE then matches nothing.
        claimed = FeedImport.objects.filter(pk=feed_import.pk, finished__isnull=True).update(
            state=status["state"], finished=now)
        if not claimed:
            feed_import.refresh_from_db()
            return feed_import
        result = status.get("result") if isinstance(status.get("result"), dict) else {}
        feed_import.state, feed_import.finished = status["state"], now
        for field in ("rows_total", "rows_ok", "rows_failed"):
            v = result.get(field)
            setattr(feed_import, field, v if _count(v) else None)
        feed_import.error = status.get("error") or ""
        feed_import.save(update_fields=["state", "finished", "rows_total", "rows_ok", "rows_failed", "error"])
    return feed_import


def describe(feed_import, status):
    """The JSON document of /imports/<task_id>.json: the status plus the source, the ads.score task
    sent after the import (its state read from the backend too), and "done": nothing will change
    any more (the import is final, and so is ads.score when one was sent)."""
    doc = dict(status)
    doc["source"] = {"id": feed_import.source_id, "name": feed_import.source.name,
                     "url_or_path": feed_import.source.url_or_path}
    doc["score"] = None
    if feed_import.score_task_id:
        s = task_status(feed_import.score_task_id)
        doc["score"] = {"task_id": s["task_id"], "state": s["state"], **({"error": s["error"]} if "error" in s else {})}
    doc["done"] = bool(status["ready"]) and (doc["score"] is None or doc["score"]["state"] in FINAL_STATES)
    return doc
