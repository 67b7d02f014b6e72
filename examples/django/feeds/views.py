"""The import progress page, its JSON, and a list of the sources.

The page draws its bar with celery-progress: its JavaScript (static celery_progress/celery_progress.js,
CeleryProgressBar.initProgressBar) polls its own view (/celery-progress/<task_id>/, from
celery_progress.urls), which reads the PROGRESS state the Go worker stores. Once the bar is complete
the page reads /imports/<task_id>.json, which records the outcome (and so sends ads.score).
"""
import json
import logging
import re

from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from . import progress
from .models import FeedImport, FeedSource

log = logging.getLogger(__name__)

#: What a task id may look like (Celery's are UUIDs; any id send_task accepts fits).
TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")

#: How many sources the index lists.
INDEX_LIMIT = 50


def _lookup(task_id):
    """The FeedImport of task_id, or (None, status code, message)."""
    if not TASK_ID.fullmatch(task_id):
        return None, 400, f"invalid task id {task_id[:80]!r}: want letters, digits and . _ : - (at most 255)"
    imp = FeedImport.objects.select_related("source").filter(task_id=task_id).first()
    if imp is None:
        return None, 404, f"no import was sent with task id {task_id}"
    return imp, 200, ""


def _current(imp):
    """Read the import's status, recording it when final; (document, HTTP status)."""
    try:
        status = progress.task_status(imp.task_id)
        imp = progress.record(imp, status)
        return progress.describe(imp, status), 200
    except progress.BackendUnavailable as e:
        log.warning("feeds: %s", e)
        return {"task_id": imp.task_id, "state": "UNKNOWN", "ready": False, "current": None, "total": None,
                "error": str(e), "done": False}, 503


def import_progress_json(request, task_id):
    """GET /imports/<task_id>.json: {task_id, state, ready, current, total, result|error, source, score}."""
    imp, code, msg = _lookup(task_id)
    if imp is None:
        return JsonResponse({"error": msg}, status=code)
    doc, code = _current(imp)
    return JsonResponse(doc, status=code)


def import_progress(request, task_id):
    """GET /imports/<task_id>/: a page with a progress bar that polls the JSON until the import ends."""
    imp, code, msg = _lookup(task_id)
    if imp is None:
        return HttpResponse(msg + "\n", status=code, content_type="text/plain; charset=utf-8")
    doc, code = _current(imp)
    try:
        progress_url = reverse("celery_progress:task_status", args=[imp.task_id])
    except NoReverseMatch:  # celery-progress's URL takes [\w-]+ only; ours allow . and : too
        progress_url = None
    ctx = {"imp": imp, "doc": doc, "bar": initial_bar(doc), "progress_url_json": json.dumps(progress_url)}
    return render(request, "feeds/import_progress.html", ctx, status=code)


#: celery_progress.js's bar colours, for the bar as the page is first drawn.
BAR_COLORS = {"progress": "#68a9ef", "success": "#76ce60", "error": "#dc4f63"}


def initial_bar(doc):
    """The bar as celery-progress's JavaScript would draw doc's state: {percent, color, message}
    (percent as text: "0", "35", "66.67"), so the page is right before its first poll, and without
    JavaScript."""
    state, current, total = doc["state"], doc.get("current"), doc.get("total")
    if state == "SUCCESS" and "error" not in doc:
        return {"percent": "100", "color": BAR_COLORS["success"], "message": "Success!"}
    if doc.get("ready"):
        return {"percent": "100", "color": BAR_COLORS["error"],
                "message": "Uh-Oh, something went wrong! " + (doc.get("error") or state)}
    if state == "PROGRESS" and total:
        percent = round(current * 100 / total, 2)
        return {"percent": f"{percent:g}", "color": BAR_COLORS["progress"],
                "message": f"{current} of {total} processed."}
    if state == "PENDING":
        return {"percent": "0", "color": BAR_COLORS["progress"], "message": "Waiting for task to start..."}
    return {"percent": "0", "color": BAR_COLORS["progress"], "message": "Task started..."}


def index(request):
    """GET /: the latest sources with their last import."""
    sources = list(FeedSource.objects.all()[:INDEX_LIMIT])
    last = {i.task_id: i for i in FeedImport.objects.filter(task_id__in=[s.last_task_id for s in sources if s.last_task_id])}
    rows = [(s, last.get(s.last_task_id)) for s in sources]
    return render(request, "feeds/index.html", {"rows": rows})
