"""Helpers for management commands that take an event on the command line."""

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from events.models import Event


def event_from_argument(value: str) -> Event:
    """The event named by its slug or id, or a CommandError that says what was not found."""
    event = Event.objects.by_slug_or_id(value)
    if event is None:
        raise CommandError(_("No event with slug or id “%(event)s”.") % {"event": value})
    return event
