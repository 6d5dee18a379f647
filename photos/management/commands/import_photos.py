"""`manage.py import_photos EVENT DIR [--watch]`: the drop-folder way in.

Without --watch: imports every image and ZIP under DIR once and exits.
With --watch: keeps polling DIR and imports each new file once it is
completely written; stop with Ctrl-C. Restarting never imports a file twice.
"""

import logging
import signal
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections

from events.cli import event_from_argument
from photos.dropfolder import import_once

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Import photos (JPEG, PNG, WebP or ZIP) from a folder into an event, once or continuously."

    def add_arguments(self, parser):
        parser.add_argument("event", help="event slug or id")
        parser.add_argument("directory", type=Path)
        parser.add_argument("--watch", action="store_true", help="keep watching for new files")
        parser.add_argument("--interval", type=float, default=2.0,
                            help="seconds between scans when watching (default 2)")
        parser.add_argument("--settle", type=float, default=5.0,
                            help="seconds a file must stay unchanged before it is imported "
                                 "when watching (default 5)")
        parser.add_argument("--photographer", help="username credited for the photos")

    def handle(self, *args, **options):
        event = event_from_argument(options["event"])
        directory = options["directory"]
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be more than 0 seconds.")
        if options["settle"] < 0:
            raise CommandError("--settle cannot be negative.")
        photographer = self._photographer(options["photographer"])
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0}

        def report(result):
            counts[result.status] += 1
            line = f"{result.status:9} {result.name}"
            if result.reason:
                line += f" – {result.reason}"
            style = self.style.SUCCESS if result.status == "accepted" else (
                self.style.WARNING if result.status == "duplicate" else self.style.ERROR)
            self.stdout.write(style(line))

        if not options["watch"]:
            import_once(event, directory, photographer=photographer, report=report)
            self._summary(counts)
            return

        self.stdout.write(f"Watching {directory} for {event.name} (Ctrl-C to stop)…")
        stop = {"now": False}
        # SIGTERM (docker stop, systemd) lets the file being imported finish, then stops.
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        seen: dict = {}
        try:
            while not stop["now"]:
                # As between two requests: drops a connection that is too old or broken,
                # so a database restart costs at most one failed scan.
                close_old_connections()
                try:
                    import_once(event, directory, photographer=photographer,
                                settle_seconds=options["settle"], seen=seen, report=report)
                except (OperationalError, InterfaceError) as error:
                    # A database restart must not end a watch left running all race day:
                    # what was not recorded is simply taken on a later scan.
                    logger.warning("drop folder scan failed, retrying: %s", error)
                    self.stderr.write(f"Database unavailable, will retry: {error}")
                time.sleep(options["interval"])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous_handler)  # called from code, not only a shell
        self._summary(counts)

    def _photographer(self, username):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        return user

    def _summary(self, counts):
        self.stdout.write(f"{counts['accepted']} accepted, {counts['duplicate']} duplicates, "
                          f"{counts['rejected']} rejected.")
