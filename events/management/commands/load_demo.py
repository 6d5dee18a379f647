import time

from django.core.management.base import BaseCommand
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from tqdm import tqdm

from events.demo import loader, scenes
from events.services import load_demo_event


class Command(BaseCommand):
    help = _("Create a published demo event with two races, a start list and race photos "
             "(safe to run again).")

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true",
                            help=_("Process the demo photos here instead of in the worker."))
        parser.add_argument("--no-photos", action="store_true",
                            help=_("Only the event, its races and start list."))

    def handle(self, *args, **options):
        result = load_demo_event()
        event = result.event
        if not result.created_anything:
            self.stdout.write(
                _("Demo event “%(name)s” (%(slug)s) is already loaded: nothing created.")
                % {"name": event.name, "slug": event.slug}
            )
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
        if not options["no_photos"]:
            self._photos(event, options["sync"])
        self.stdout.write(_("Public page: %(url)s") % {"url": event.get_absolute_url()})

    def _photos(self, event, sync: bool) -> None:
        started = time.monotonic()
        with self._progress(len(scenes.PHOTOS), _("drawing")) as bar:
            photos = loader.load_demo_photos(
                event, progress=lambda done, total: bar.update(1))
        for rejection in photos.rejected:  # a bug in the drawing: say which photo
            self.stderr.write(self.style.ERROR(rejection))
        if photos.added:
            self.stdout.write(self.style.SUCCESS(ngettext_lazy(
                "Drew and added %(count)d demo photo in %(seconds).1f s.",
                "Drew and added %(count)d demo photos in %(seconds).1f s.", "count")
                % {"count": len(photos.added), "seconds": time.monotonic() - started}))
        else:
            self.stdout.write(ngettext_lazy(
                "The %(count)d demo photo is already there.",
                "The %(count)d demo photos are already there.", "count")
                % {"count": photos.already_there})
        if sync:
            # Also those queued by an earlier load for a worker that has not run.
            waiting = loader.unfinished(event)
            if not waiting:
                return
            started = time.monotonic()
            with self._progress(len(waiting), _("processing")) as bar:
                loader.process_here(event, waiting, progress=lambda done, total: bar.update(1))
            self.stdout.write(self.style.SUCCESS(
                _("Processed them in %(seconds).1f s: bib and selfie search work now.")
                % {"seconds": time.monotonic() - started}))
            return
        if not photos.added:
            return
        status = reverse("photos:upload", args=[event.slug])
        self.stdout.write(
            _("The worker reads their bibs and faces in the background (one to two minutes "
              "on two cores); bib search finds each photo once it is ready. Progress: %(url)s")
            % {"url": status})

    def _progress(self, total: int, what) -> tqdm:
        # As in process_event: the bar goes to the stream under Django's wrapper, and
        # only when it is a terminal.
        return tqdm(total=total, desc=str(what), unit=str(_("photo")), file=self.stderr._out,
                    disable=None)
