from django.core.management.base import BaseCommand
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from events.services import load_demo_event


class Command(BaseCommand):
    help = "Create a published demo event with two races and a start list (safe to run again)."

    def handle(self, *args, **options):
        result = load_demo_event()
        event = result.event
        if not result.created_anything:
            self.stdout.write(
                _("Demo event “%(name)s” (%(slug)s) is already loaded: nothing created.")
                % {"name": event.name, "slug": event.slug}
            )
            return
        if result.event_created:
            self.stdout.write(self.style.SUCCESS(
                _("Created event “%(name)s” (%(slug)s) on %(date)s in %(location)s.")
                % {"name": event.name, "slug": event.slug, "date": event.date.isoformat(),
                   "location": event.location}
            ))
        for race in result.races_created:
            self.stdout.write(self.style.SUCCESS(
                _("Created race %(name)s, start at %(start)s.")
                % {"name": race.name, "start": race.start_time.strftime("%H:%M")}
            ))
        if result.runners_created:
            self.stdout.write(self.style.SUCCESS(
                ngettext_lazy(
                    "Added %(count)d runner to the start list.",
                    "Added %(count)d runners to the start list.",
                    "count",
                ) % {"count": result.runners_created}
            ))
        self.stdout.write(_("Public page: %(url)s") % {"url": event.get_absolute_url()})
