"""``manage.py process_event EVENT``: (re)process the photos of one event.

Queues every photo that is neither ready nor failed, and ready photos that
miss a step (a step added since, or a model that was unavailable and is back);
done steps are skipped, so running it again after a crash or an outage only
finishes what is left.
``--only-failed`` resets failed photos and queues them again. ``--redo STEP``
runs a step and the steps after it again on ready photos (after a model
upgrade, e.g. ``--redo faces`` for a new face-embedding version). ``--sync`` does
the work in this process, without a Celery worker (a laptop, a test).
"""

import time
from functools import partial

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from tqdm import tqdm

from events.cli import event_from_argument
from events.models import Event
from photos import pipeline
from photos.models import Photo
from photos.tasks import process_photo
from racephoto.observability import WORKER_KEY_PREFIX
from racephoto.redis import get_redis

FINISHED = (Photo.State.READY, Photo.State.FAILED)
MAX_FAILURES_LISTED = 50


def _workers_alive() -> bool:
    try:
        return any(get_redis().scan_iter(match=WORKER_KEY_PREFIX + "*", count=100))
    except Exception:  # only decides whether to print a hint
        return True


class Command(BaseCommand):
    help = _("Process an event's photos that are not ready yet, or retry the failed ones.")

    def add_arguments(self, parser):
        parser.add_argument("event", help=_("Event slug or id."))
        parser.add_argument("--wait", action="store_true",
                            help=_("Show progress until every photo is ready or failed."))
        parser.add_argument("--only-failed", action="store_true",
                            help=_("Reset the failed photos and process only those."))
        parser.add_argument("--redo", metavar="STEP",
                            help=_("Run this step and the ones after it again on ready photos "
                                   "(after a model upgrade). Steps: %(steps)s.")
                            % {"steps": ", ".join(step.name for step in pipeline.STEPS)})
        parser.add_argument("--sync", action="store_true",
                            help=_("Process here, one photo after another, without a worker."))
        parser.add_argument("--poll-interval", type=float, default=1.0,
                            help=_("Seconds between progress checks with --wait."))

    def handle(self, *args, **options):
        event = event_from_argument(options["event"])
        photos = Photo.objects.filter(event=event)
        if options["redo"]:
            if options["only_failed"]:
                raise CommandError(_("--redo and --only-failed do not go together."))
            try:
                count = pipeline.redo(photos, options["redo"])
            except ValueError:
                raise CommandError(_("No processing step “%(step)s”. Steps: %(steps)s.") % {
                    "step": options["redo"],
                    "steps": ", ".join(step.name for step in pipeline.STEPS)}) from None
            self.stdout.write(ngettext("%(count)d ready photo will go through %(step)s again.",
                                       "%(count)d ready photos will go through %(step)s again.",
                                       count) % {"count": count, "step": options["redo"]})
        if options["only_failed"]:
            failed = photos.filter(state=Photo.State.FAILED).values_list("pk", flat=True)
            ids = [pk for pk in failed if pipeline.reset_failed(pk)]
        else:
            # Failed photos would fail the same way again: they wait for --only-failed.
            ids = pipeline.photos_needing_work(photos)

        if not ids:
            self.stdout.write(_("Nothing to process."))
        elif options["sync"]:
            self._process_here(ids)
        else:
            for pk in ids:
                transaction.on_commit(partial(process_photo.delay, pk))
            self.stdout.write(ngettext("Queued %(count)d photo.", "Queued %(count)d photos.",
                                       len(ids)) % {"count": len(ids)})
            if options["wait"]:
                self._wait(event, len(ids), options["poll_interval"])
        self._summary(event)

    def _progress(self, total: int) -> tqdm:
        # tqdm redraws its line with "\r"; Django's OutputWrapper would add a
        # newline to every write, so the bar goes to the stream underneath.
        # disable=None: no bar when stderr is not a terminal (logs, tests).
        return tqdm(total=total, unit=str(_("photo")), file=self.stderr._out, disable=None)

    def _process_here(self, ids: list[int]) -> None:
        with self._progress(len(ids)) as bar:
            for pk in ids:
                try:
                    pipeline.process_photo(pk)
                except pipeline.TRANSIENT_ERRORS as exc:
                    # No worker to retry later: record it, --only-failed retries it.
                    pipeline.give_up(pk, exc)
                bar.update(1)

    def _wait(self, event: Event, total: int, interval: float) -> None:
        pending = Photo.objects.filter(event=event).exclude(state__in=FINISHED)
        if not _workers_alive():
            self.stderr.write(_("No Celery worker seems to be running: start one, or use --sync."))
        try:
            with self._progress(total) as bar:
                while True:
                    remaining = pending.count()
                    bar.total = max(total, bar.n + remaining)
                    bar.update(max(0, bar.total - remaining - bar.n))
                    if remaining == 0:
                        return
                    time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write(_("Stopped waiting; the workers carry on."))

    def _summary(self, event: Event) -> None:
        counts = Photo.objects.filter(event=event).state_counts()
        self.stdout.write(_("Photos of %(event)s:") % {"event": event.name})
        for state, label in Photo.State.choices:
            if counts[state]:
                self.stdout.write(f"  {label}: {counts[state]}")
        failed = list(Photo.objects.filter(event=event, state=Photo.State.FAILED).order_by("pk")
                      .values_list("pk", "original_name", "failure_reason")[:MAX_FAILURES_LISTED])
        if not failed:
            return
        self.stdout.write(self.style.WARNING(_("Failures:")))
        for pk, name, reason in failed:
            self.stdout.write(f"  #{pk} {name}: {reason}" if name else f"  #{pk}: {reason}")
        if counts[Photo.State.FAILED] > MAX_FAILURES_LISTED:
            more = counts[Photo.State.FAILED] - MAX_FAILURES_LISTED
            self.stdout.write("  " + _("… and %(count)d more.") % {"count": more})
        self.stdout.write(_("Retry them with --only-failed once the cause is fixed."))
