"""Feed sources and their imports."""
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models

#: Celery's final states: the result will not change any more.
FINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_source(value):
    """A source is an http(s) URL with a host, or an absolute file path the worker can read."""
    if not value or value != value.strip():
        raise ValidationError("A source must not be empty or start or end with spaces.")
    if _CONTROL.search(value):
        raise ValidationError("A source must not contain control characters.")
    if value.startswith(("http://", "https://")):
        if not urlsplit(value).hostname:
            raise ValidationError("The URL %(value)s has no host.", params={"value": value})
        return
    if "://" in value:
        raise ValidationError("Only http:// and https:// URLs can be imported, not %(value)s.", params={"value": value})
    if not value.startswith("/"):
        raise ValidationError("A file path must be absolute (the worker runs elsewhere): %(value)s.", params={"value": value})


class FeedSource(models.Model):
    """An advertiser feed to import. Saving a new source (or changing its URL or path) sends
    ads.import_feed once the transaction commits; last_task_id is that task's id."""

    name = models.CharField(max_length=200)
    url_or_path = models.CharField("URL or path", max_length=2048, validators=[validate_source])
    created = models.DateTimeField(auto_now_add=True)
    last_task_id = models.CharField(max_length=255, blank=True, default="", editable=False)
    #: Why the last import could not be sent (the broker was unreachable, ...); empty when it was.
    enqueue_error = models.TextField(blank=True, default="", editable=False)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.name} ({self.url_or_path})"

    @classmethod
    def from_db(cls, db, field_names, values):
        obj = super().from_db(db, field_names, values)
        obj._saved_source = obj.url_or_path if "url_or_path" in field_names else None
        return obj

    def source_changed(self):
        """Whether url_or_path differs from what was loaded or last saved (unknown counts as changed)."""
        return getattr(self, "_saved_source", None) != self.url_or_path

    def mark_saved(self):
        """Remember the saved url_or_path, so another save of the same source does not re-import it."""
        self._saved_source = self.url_or_path


class FeedImport(models.Model):
    """One ads.import_feed task sent for a source, and its outcome once Django has seen it final.
    Recording a successful import that changed rows sends ads.score (see signals)."""

    source = models.ForeignKey(FeedSource, on_delete=models.CASCADE, related_name="imports")
    task_id = models.CharField(max_length=255, unique=True)
    enqueued = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=32, default="PENDING")
    finished = models.DateTimeField(null=True, blank=True)
    rows_total = models.BigIntegerField(null=True, blank=True)
    rows_ok = models.BigIntegerField(null=True, blank=True)
    rows_failed = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    score_task_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-enqueued", "-id"]

    def __str__(self):
        return f"import {self.task_id} of {self.source_id}: {self.state}"

    @property
    def is_final(self):
        """Whether the outcome is recorded."""
        return self.finished is not None

    def wants_score(self):
        """A successful import that changed rows, not yet followed by ads.score."""
        return self.state == "SUCCESS" and (self.rows_ok or 0) > 0 and not self.score_task_id
