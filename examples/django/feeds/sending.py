"""Sending the ads tasks to the Go worker. Routing comes from task_routes (celeryconfig.yaml), so
nothing here names a queue."""
import logging

from django.db import transaction

from forumads_site.celery import app

from .models import FeedImport, FeedSource

log = logging.getLogger(__name__)

IMPORT_FEED = "ads.import_feed"
SCORE = "ads.score"


def send_import(source, url_or_path):
    """Send ads.import_feed(url_or_path) for the FeedSource source and record its task id on the
    source and as a new FeedImport. Run it after the source's row committed (the signal uses
    transaction.on_commit).

    The worker is told not to chain ads.score itself (score=False): Django sends it when it records
    the successful import (see signals.score_after_import), so each import is scored once.
    Returns the task id, or None when the message could not be sent: that is logged and stored in
    source.enqueue_error (not raised: this runs as an on_commit hook, after the row committed).
    """
    try:
        result = app.send_task(IMPORT_FEED, args=[url_or_path], kwargs={"score": False})
    except Exception as e:
        log.exception("feeds: cannot send %s for source %s", IMPORT_FEED, source.pk)
        source.enqueue_error = f"cannot send {IMPORT_FEED}: {type(e).__name__}: {e}"
        FeedSource.objects.filter(pk=source.pk).update(enqueue_error=source.enqueue_error)
        return None
    with transaction.atomic():
        FeedSource.objects.filter(pk=source.pk).update(last_task_id=result.id, enqueue_error="")
        FeedImport.objects.create(source_id=source.pk, task_id=result.id)
    source.last_task_id, source.enqueue_error = result.id, ""
    log.info("feeds: sent %s[%s] for source %s (%s)", IMPORT_FEED, result.id, source.pk, url_or_path)
    return result.id


def send_score(feed_import):
    """Send ads.score after feed_import and store its task id on the import (once: an import whose
    score_task_id is already set is left alone). Returns the task id, or None when the message could
    not be sent (logged; beat's periodic ads.score still runs)."""
    try:
        result = app.send_task(SCORE)
    except Exception:
        log.exception("feeds: cannot send %s after import %s", SCORE, feed_import.task_id)
        return None
    updated = FeedImport.objects.filter(pk=feed_import.pk, score_task_id="").update(score_task_id=result.id)
    if updated:
        feed_import.score_task_id = result.id
    log.info("feeds: sent %s[%s] after import %s", SCORE, result.id, feed_import.task_id)
    return result.id
