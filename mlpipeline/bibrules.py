"""Which OCR readings become bib tags on a photo.

The reader returns every digit string it sees (bib numbers, but also clocks,
years, sponsor phone numbers, half-read bibs). These rules keep the readings
that can be bibs of this event, normalise them as the start list writes them
(no leading zeros) and merge repeats, so a photo is tagged once per bib.

With a start list, a reading outside it is not a tag runners see: it is not
a bib of this event (on the RBNR dev set the readings outside the list were
clocks, years, sponsor text and half-read bibs), so showing it would only
mislead. ``off_list`` still hands those readings back, so the organiser can
count and review them: a runner missing from the start list looks exactly
like that, and nothing else would tell. The reader gives every text box
several readings (see ``inference.bib_ocr.BibReading.alternatives``): the most confident one
that is on the list wins. When none is, a reading that is one obvious slip away
from exactly one listed bib is corrected to that bib (an extra digit read from
the bib's edge, an edge digit lost, or one digit misread), at a reduced confidence.
Without a start list the most confident reading of each box is kept.

:func:`rules_for_event` builds an event's rules from its settings and start list
(the event is only read through its attributes: this module needs no Django).
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

DIGITS = "0123456789"
#: a corrected reading is less certain than one read exactly as listed
CORRECTION_PENALTY = 0.8
#: the product's confidence floor for a reading to count: on rbnr-dev with the start
#: list, 0.3 costs 3 of 157 found bibs and drops 20 of 33 unlabelled tags (bench/bibs.py)
PRODUCT_MIN_CONFIDENCE = 0.3
#: without a start list no reading is confirmed; one at least this confident is shown to
#: runners as a probable match. On rbnr-dev without a start list (bench/search.py probable,
#: bench/bibs.py), 0.9 keeps 100 of the 107 labelled bibs found at 0.3 and halves the
#: unlabelled tags (175 to 88: clocks, years, half-read bibs, and unlabelled runners);
#: agreement across a runner's photos added nothing at any floor tried.
PROBABLE_MIN_CONFIDENCE = 0.9
#: two tags whose boxes share more than this much of the smaller one read the same digits
SAME_PLACE = 0.5
#: an event's rules are built again after this long even when nothing seems changed
EVENT_RULES_CACHE_SECONDS = 60


@dataclass(frozen=True)
class AcceptedBib:
    text: str
    confidence: float
    box: tuple[float, float, float, float]
    confirmed: bool
    #: what was read when the rules corrected it onto a listed bib ("3025" for 4025), else ""
    read_as: str = ""


def canonical(bib: str) -> str:
    """A bib as start lists write it: no surrounding spaces, no leading zeros."""
    bib = bib.strip()
    return bib.lstrip("0") or bib[:1]


@dataclass(frozen=True)
class BibRules:
    min_length: int = 1
    max_length: int = 6
    min_value: int | None = None
    max_value: int | None = None
    start_list: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    #: readings less sure than this are noise (sponsor logos, folds in the bib)
    min_confidence: float = 0.0

    def __post_init__(self):
        # Normalised once: an event's rules, start list included, serve every photo.
        object.__setattr__(self, "ignore", frozenset(map(canonical, self.ignore)))
        if self.start_list is not None:
            object.__setattr__(self, "start_list", frozenset(map(canonical, self.start_list)))

    def normalise(self, text: str) -> str | None:
        """The bib as the start list writes it, or None when it cannot be a bib here."""
        if not text or not text.isascii() or not text.isdigit():
            return None
        bib = canonical(text)
        if not self.min_length <= len(bib) <= self.max_length:
            return None
        value = int(bib)
        if self.min_value is not None and value < self.min_value:
            return None
        if self.max_value is not None and value > self.max_value:
            return None
        if bib in self.ignore:
            return None
        return bib

    def accept(self, readings: Iterable) -> list[AcceptedBib]:
        """Readings (``text``, ``confidence``, ``box``, optionally ``candidates()``) kept as
        tags, best first; at most one tag per reading."""
        best: dict[str, AcceptedBib] = {}
        for reading in readings:
            chosen = self._choose(reading)
            if chosen is None:
                continue
            bib, confidence, read_as = chosen
            tag = AcceptedBib(bib, confidence, tuple(reading.box),
                              self.start_list is not None and not read_as, read_as)
            # The bib read exactly somewhere on the photo outranks a correction onto it.
            if bib not in best or (tag.confirmed, confidence) > (best[bib].confirmed,
                                                                  best[bib].confidence):
                best[bib] = tag
        # One patch of a bib carries one number: where two tags sit on the same digits
        # (a part read again at the closer second look, "80" inside "814"), the more
        # confident one stands.
        kept: list[AcceptedBib] = []
        for tag in sorted(best.values(), key=lambda tag: -tag.confidence):
            if not any(_overlap(tag.box, other.box) > SAME_PLACE for other in kept):
                kept.append(tag)
        return kept

    def off_list(self, readings: Iterable, kept: Iterable[AcceptedBib] = ()) -> list[AcceptedBib]:
        """Readings dropped only because their number is not on the start list, as
        unconfirmed tags for the organiser to review, best first, one per place.

        A reading counts when it could be a bib here (digits, length, value range, not
        ignored, confident enough) but neither it nor a near miss is listed. Places
        already taken by a ``kept`` tag are left out (a part of a read bib read again).
        Without a start list nothing is dropped for that reason: the list is empty.
        """
        if self.start_list is None:
            return []
        best: dict[str, AcceptedBib] = {}
        for reading in readings:
            if self._choose(reading) is not None:
                continue
            options = reading.candidates() if hasattr(reading, "candidates") else \
                ((reading.text, reading.confidence),)
            for text, confidence in sorted(options, key=lambda option: -float(option[1])):
                bib = self.normalise(text) if confidence >= self.min_confidence else None
                if bib is None:
                    continue
                if bib not in best or confidence > best[bib].confidence:
                    best[bib] = AcceptedBib(bib, float(confidence), tuple(reading.box), False)
                break
        taken = [tag.box for tag in kept]
        dropped: list[AcceptedBib] = []
        for tag in sorted(best.values(), key=lambda tag: -tag.confidence):
            if not any(_overlap(tag.box, box) > SAME_PLACE for box in taken):
                dropped.append(tag)
                taken.append(tag.box)
        return dropped

    def keeps(self, reading) -> bool:
        """Whether this reading would become a tag (the bib reader's second look asks)."""
        return self._choose(reading) is not None

    def _choose(self, reading) -> tuple[str, float, str] | None:
        """The reading's bib, its confidence, and what was read when it was corrected."""
        options = reading.candidates() if hasattr(reading, "candidates") else \
            ((reading.text, reading.confidence),)
        options = sorted(((text, float(confidence)) for text, confidence in options
                          if confidence >= self.min_confidence), key=lambda option: -option[1])
        if self.start_list is None:
            for text, confidence in options:
                bib = self.normalise(text)
                if bib is not None:
                    return bib, confidence, ""
            return None
        for text, confidence in options:
            bib = self.normalise(text)
            if bib is not None and bib in self.start_list:
                return bib, confidence, ""
        for text, confidence in options:
            corrected = near_miss(text, self.start_list)
            if corrected is not None and self.normalise(corrected) is not None:
                return corrected, confidence * CORRECTION_PENALTY, text[:12]
        return None


def _overlap(a, b) -> float:
    """Share of the smaller box (x1, y1, x2, y2) that lies inside the other."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller if smaller > 0 else 0.0


def near_miss(text: str, listed: frozenset[str]) -> str | None:
    """The one listed bib that ``text`` (digits as read) is a slip away from, else None.

    Slips seen on real bibs: one extra digit at either end (the bib's border or
    a safety pin read as a 1), an edge digit lost (cut by the box or a fold),
    and one digit misread at the same length, a misread first digit often
    coming out as a leading 0 ("0287" for 2287). Two candidates means we cannot
    tell, so nothing is corrected; a large start list therefore corrects less.
    """
    if not text.isdigit() or len(canonical(text)) < 2:
        return None
    candidates = set()
    if len(text) >= 3:
        candidates.update(canonical(cut) for cut in (text[1:], text[:-1])
                          if canonical(cut) in listed)
    for form in {text, canonical(text)}:
        if len(form) >= 3:
            # The few strings one slip away are looked up, instead of scanning a start
            # list of thousands for every reading of every box.
            candidates.update(bib for bib in _one_slip_away(form) if bib in listed)
    return candidates.pop() if len(candidates) == 1 else None


def _one_slip_away(form: str):
    """``form`` with one digit changed, or with one digit added at either end."""
    for position, digit in enumerate(form):
        for other in DIGITS:
            if other != digit:
                yield form[:position] + other + form[position + 1:]
    for digit in DIGITS:
        yield digit + form
        yield form + digit


# --- An event's rules --------------------------------------------------------------------

_event_rules: dict[int, tuple[float, tuple, BibRules]] = {}


def rules_for_event(event) -> BibRules:
    """The event's bib rules, start list included (kept a minute per process: a burst of
    photos of one event would otherwise read its whole start list for every photo)."""
    stamp = (event.updated_at, event.start_list.count())
    cached = _event_rules.get(event.pk)
    if cached and cached[1] == stamp and time.monotonic() - cached[0] < EVENT_RULES_CACHE_SECONDS:
        return cached[2]
    start_list = frozenset(bib for bib in event.start_list.values_list("bib", flat=True)
                           if bib.strip().isdigit())
    rules = BibRules(min_length=event.bib_min_length, max_length=event.bib_max_length,
                     min_value=event.bib_min_value, max_value=event.bib_max_value,
                     start_list=start_list or None,
                     ignore=frozenset(event.ignored_bibs_raw()),
                     min_confidence=PRODUCT_MIN_CONFIDENCE)
    _event_rules[event.pk] = (time.monotonic(), stamp, rules)
    return rules


def forget_event_rules() -> None:
    """Drop every event's cached rules (tests; a changed event is noticed on its own)."""
    _event_rules.clear()
