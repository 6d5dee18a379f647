"""``manage.py check_indexes [EVENT]``: verify that every search index matches the database.

Exits with status 1 and lists the differences when they disagree (for
monitoring); ``rebuild_indexes`` repairs them.
"""

import sys

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from events.cli import event_from_argument
from events.models import Event
from mlpipeline import indexes


class Command(BaseCommand):
    help = _("Check that the search indexes hold exactly the searchable vectors of the database.")

    def add_arguments(self, parser):
        parser.add_argument("event", nargs="?", help=_("Event slug or id (default: every event)."))
        parser.add_argument("--ids-only", action="store_true",
                            help=_("Compare ids only, not the vectors (faster)."))

    def handle(self, *args, **options):
        events = ([event_from_argument(options["event"])] if options["event"]
                  else Event.objects.order_by("pk"))
        problems = []
        for event in events:
            problems += indexes.check(event.pk, vectors=not options["ids_only"])
        if not problems:
            self.stdout.write(_("Indexes and database agree."))
            return
        for problem in problems:
            self.stderr.write(str(problem))
        self.stderr.write(_("Run manage.py rebuild_indexes to repair."))
        sys.exit(1)
