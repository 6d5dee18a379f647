"""``manage.py relink_event [EVENT]``: cluster every face of an event into runners again.

Linking after a burst of photos is incremental: the clusters that still hold together
are kept, and only new faces (and those of a cluster that broke up) look for
neighbours. What it decided earlier therefore stays, which is what a burst needs, but
not what the event needs when the rules themselves changed: after a face model's link
threshold is changed in the registry or the clustering is improved, clusters made
under the old rules stay as they were wherever they still hold (a runner split in two
under a stricter threshold stays split). A full re-link clusters every face as if all
the photos had come at once, keeps each cluster's number where its faces still are,
and writes only what changes; then the burst and timing suggestions are recomputed, as
after any linking run. Safe while workers run: linking recomputes everything from the
database, so when PostgreSQL breaks a deadlock with a worker's run, it runs again.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections
from django.utils.translation import gettext as _

from events.cli import event_from_argument
from events.models import Event
from mlpipeline.tasks import link_and_suggest

# Like the worker's linking task: a deadlock with a worker's writes is broken by PostgreSQL
# failing one side, and running the whole computation again is always right.
ATTEMPTS = 3


class Command(BaseCommand):
    help = _("Cluster every face of one event, or of every event, into runners again and "
             "carry the bibs anew.")

    def add_arguments(self, parser):
        parser.add_argument("event", nargs="?", help=_("Event slug or id (default: every event)."))

    def handle(self, *args, **options):
        events = ([event_from_argument(options["event"])] if options["event"]
                  else list(Event.objects.order_by("pk")))
        for number, event in enumerate(events, start=1):
            started = time.monotonic()
            result = self._relink(event)
            self.stdout.write(
                _("[%(number)d/%(total)d] %(event)s: faces: %(faces)d, runners: %(clusters)d, "
                  "faces moved: %(moved)d, face-link tags written: %(tags)d (%(seconds).1f s)")
                % {"number": number, "total": len(events), "event": event.slug,
                   "faces": result.faces, "clusters": result.clusters, "moved": result.faces_moved,
                   "tags": result.tags_written, "seconds": time.monotonic() - started})

    def _relink(self, event):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return link_and_suggest(event.pk, full=True)
            except (OperationalError, InterfaceError) as exc:
                if attempt == ATTEMPTS:
                    raise CommandError(
                        _("%(event)s: the database stopped the re-link %(attempts)d times "
                          "(%(error)s). Run the command again.")
                        % {"event": event.slug, "attempts": ATTEMPTS, "error": exc}) from exc
                self.stderr.write(_("%(event)s: interrupted by the database (%(error)s), again…")
                                  % {"event": event.slug, "error": exc})
                close_old_connections()  # a broken connection is opened afresh
                time.sleep(attempt)
