"""manage.py enqueue_import SOURCE: create a FeedSource (its post_save sends ads.import_feed) and
print the task id."""
import json
import os
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from feeds import progress
from feeds.models import FeedImport, FeedSource


class Command(BaseCommand):
    help = ("Create a feed source for a file or an http(s) URL; saving it sends ads.import_feed to the "
            "Go worker. Prints the task id on stdout. A relative path is made absolute and must exist here.")

    def add_arguments(self, parser):
        parser.add_argument("source", help="a feed file (CSV) or an http(s) URL")
        parser.add_argument("--name", help="the source's name (default: the file name)")
        parser.add_argument("--wait", action="store_true",
                            help="wait for the import to finish, printing its progress on stderr")
        parser.add_argument("--timeout", type=float, default=600.0,
                            help="with --wait: give up after this many seconds (default 600)")

    def handle(self, *args, source, name, wait, timeout, **options):
        if not source.startswith(("http://", "https://")) and "://" not in source:
            path = os.path.abspath(source)
            if not os.path.isfile(path):
                raise CommandError(f"{source}: no such file")
            source = path
        fs = FeedSource(name=name or os.path.basename(source.rstrip("/")) or source, url_or_path=source)
        try:
            fs.full_clean()
        except ValidationError as e:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in e.message_dict.items())) from None
        with transaction.atomic():
            fs.save()
        # The transaction committed: the on_commit hook has sent the task (or recorded why not).
        if not fs.last_task_id:
            raise CommandError(f"source {fs.pk} saved, but its import was not sent: {fs.enqueue_error or 'unknown error'}")
        self.stdout.write(fs.last_task_id)
        if options["verbosity"] >= 2:
            self.stderr.write(f"source {fs.pk}: progress at /imports/{fs.last_task_id}/")
        if wait:
            self._wait(FeedImport.objects.get(task_id=fs.last_task_id), timeout)

    def _wait(self, imp, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                status = progress.task_status(imp.task_id)
            except progress.BackendUnavailable as e:
                raise CommandError(str(e)) from None
            shown = (status["state"], status["current"], status["total"])
            if shown != last:
                count = f" {status['current']}/{status['total']}" if status["total"] is not None else ""
                self.stderr.write(f"{status['state']}{count}")
                last = shown
            if status["ready"]:
                imp = progress.record(imp, status)
                break
            if time.monotonic() > deadline:
                raise CommandError(f"import {imp.task_id} not finished after {timeout:g}s (state {status['state']})")
            time.sleep(0.5)
        if imp.state != "SUCCESS" or "error" in status:
            raise CommandError(f"import {imp.task_id} {imp.state}: {status.get('error', '')}")
        self.stderr.write(json.dumps(status["result"], sort_keys=True))
        if imp.score_task_id:
            self.stderr.write(f"sent ads.score {imp.score_task_id}")
