"""The post_save handlers that send the ads tasks, each only once the row has committed.

FeedSource saved (new, or its URL/path changed)   -> ads.import_feed(url_or_path)
FeedImport recorded as a SUCCESS that changed rows -> ads.score()
"""
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import sending
from .models import FeedImport, FeedSource


@receiver(post_save, sender=FeedSource, dispatch_uid="feeds.import_on_save")
def import_on_save(sender, instance, created, raw=False, **kwargs):
    """Send ads.import_feed for a new source, or one whose URL or path changed, after the commit."""
    if raw:  # loaddata: fixtures do not start imports
        return
    if not (created or instance.source_changed()):
        return
    instance.mark_saved()
    source = instance.url_or_path  # as saved, whatever happens to the instance before the commit
    transaction.on_commit(lambda: sending.send_import(instance, source))


@receiver(post_save, sender=FeedImport, dispatch_uid="feeds.score_after_import")
def score_after_import(sender, instance, raw=False, **kwargs):
    """Send ads.score once an import is recorded as a success that changed rows, after the commit."""
    if raw or not instance.wants_score():
        return
    transaction.on_commit(lambda: sending.send_score(instance))
