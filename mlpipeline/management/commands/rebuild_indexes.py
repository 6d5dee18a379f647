"""``manage.py rebuild_indexes [EVENT]``: build the search indexes again from the database.

For a new machine, a restored backup, a changed index format, or an index that
``check_indexes`` found out of step. Safe while workers run: each index is
rebuilt under the same lock that incremental updates take.
"""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from events.cli import event_from_argument
from events.models import Event
from mlpipeline import indexes


class Command(BaseCommand):
    help = _("Rebuild the face and image search indexes of one event, or of all events.")

    def add_arguments(self, parser):
        parser.add_argument("event", nargs="?", help=_("Event slug or id (default: every event)."))

    def handle(self, *args, **options):
        if settings.SEARCH_BACKEND == "pgvector":
            self.stdout.write(_("SEARCH_BACKEND is pgvector: PostgreSQL keeps its own indexes, "
                                "there is nothing to rebuild."))
            return
        events = ([event_from_argument(options["event"])] if options["event"]
                  else Event.objects.order_by("pk"))
        for event in events:
            result = indexes.rebuild(event.pk)
            self.stdout.write(_("%(event)s: %(count)d vectors in %(files)d index files.")
                              % {"event": event.slug, "count": result.added,
                                 "files": result.files})
