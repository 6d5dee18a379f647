"""Which OCR readings become bib tags on a photo.

The reader returns every digit string it sees (bib numbers, but also clocks,
years, sponsor phone numbers, half-read bibs). These rules keep the readings
that can be bibs of this event, normalise them as the start list writes them
(no leading zeros) and merge repeats, so a photo is tagged once per bib.

With a start list, a reading outside it is dropped rather than kept as an
unconfirmed tag: it is not a bib of this event (on the RBNR dev set the
readings outside the list were clocks, years, sponsor text and half-read
bibs), so showing it would only mislead. Before dropping it, a reading that is
one obvious slip away from exactly one listed bib is corrected to that bib (an
extra digit read from the bib's edge, or one digit misread), at a reduced confidence.
"""

from collections.abc import Iterable
from dataclasses import dataclass

#: a corrected reading is less certain than one read exactly as listed
CORRECTION_PENALTY = 0.8


@dataclass(frozen=True)
class AcceptedBib:
    text: str
    confidence: float
    box: tuple[float, float, float, float]
    confirmed: bool


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

    def normalise(self, text: str) -> str | None:
        """The bib as the start list writes it, or None when it cannot be a bib here."""
        if not text or not text.isascii() or not text.isdigit():
            return None
        bib = text.lstrip("0") or "0"
        if not self.min_length <= len(bib) <= self.max_length:
            return None
        value = int(bib)
        if self.min_value is not None and value < self.min_value:
            return None
        if self.max_value is not None and value > self.max_value:
            return None
        if bib in self._ignored:
            return None
        return bib

    @property
    def _ignored(self) -> frozenset[str]:
        return frozenset(item.lstrip("0") or "0" for item in self.ignore)

    @property
    def _listed(self) -> frozenset[str] | None:
        if self.start_list is None:
            return None
        return frozenset(item.lstrip("0") or "0" for item in self.start_list)

    def accept(self, readings: Iterable) -> list[AcceptedBib]:
        """Readings (objects with ``text``, ``confidence``, ``box``) kept as tags, best first."""
        listed = self._listed
        best: dict[str, AcceptedBib] = {}
        for reading in readings:
            if reading.confidence < self.min_confidence:
                continue
            digits = reading.text.strip().lstrip("0") or reading.text.strip()
            confidence = float(reading.confidence)
            if listed is not None and digits not in listed:
                corrected = near_miss(digits, listed)
                if corrected is None:
                    continue
                digits, confidence = corrected, confidence * CORRECTION_PENALTY
            bib = self.normalise(digits)
            if bib is None:
                continue
            if bib not in best or confidence > best[bib].confidence:
                best[bib] = AcceptedBib(bib, confidence, tuple(reading.box), listed is not None)
        return sorted(best.values(), key=lambda tag: -tag.confidence)


def near_miss(text: str, listed: frozenset[str]) -> str | None:
    """The one listed bib that ``text`` is a slip away from, else None.

    Slips seen on real bibs: one extra digit at either end (the bib's border or
    a safety pin read as a 1), and one digit misread at the same length.
    Two candidates means we cannot tell, so nothing is corrected.
    """
    if not text.isdigit():
        return None
    candidates = set()
    if len(text) >= 3:
        candidates.update(bib for bib in (text[1:], text[:-1]) if bib in listed)
    for bib in listed:
        if len(bib) == len(text) >= 3 and sum(a != b for a, b in zip(bib, text)) == 1:
            candidates.add(bib)
    return candidates.pop() if len(candidates) == 1 else None
