"""Which of an event's bib tags runners see: the one rule bib search, face linking, the
suggestions and the organiser's workspace all read.

A query over photos' ``BibTag`` rows and the event's start list, so it lives with them;
the pipeline (mlpipeline) decides how tags are made, not which are shown.
"""

from events.models import StartListEntry
from mlpipeline.bibrules import PROBABLE_MIN_CONFIDENCE
from photos.models import BibTag


def has_start_list(event_id: int) -> bool:
    return StartListEntry.objects.filter(event_id=event_id).exists()


def shown_tags(event_id: int, start_list: bool | None = None):
    """The event's tags a runner may see, and linking may trust: by hand, carried over by
    face, read on the start list, or, where the event has no start list, read at least
    ``PROBABLE_MIN_CONFIDENCE``. A shown tag with ``confirmed=False`` is *probable*: such a
    reading, or a face-link tag carried from such readings only.

    Readings off the start list are left out: they are for staff to review. A reading the
    bib rules corrected onto a listed bib is shown as probable until it is confirmed
    (:mod:`mlpipeline.corrections`). ``start_list``: whether the event has one, when the
    caller knows already.
    """
    if start_list is None:
        start_list = has_start_list(event_id)
    tags = BibTag.objects.filter(photo__event_id=event_id)
    if start_list:
        return tags.exclude(source=BibTag.Source.OCR, confirmed=False, read_as="")
    return tags.exclude(source=BibTag.Source.OCR, confirmed=False,
                        confidence__lt=PROBABLE_MIN_CONFIDENCE)
