"""Outfit search: "red shirt white cap", "maillot rouge casquette blanche", "short noir".

The text is read with a small English and French vocabulary (garments, colours with their
French genders and plurals): each colour is one part of the query, tied to the garment
next to it (before it in English, after it in French) or, alone, to any garment. A word
outside the vocabulary is refused with a sentence listing what is understood: a search
that silently ignored half the words would look like it worked.

Two ways to answer, decided by what this machine has (:func:`active_mode`):

- *colours* (the default, no weights): the colours the pipeline named under each face
  (``photos.Outfit``, from :mod:`mlpipeline.inference.outfit`). A photo ranks by how many
  parts one runner in it matches, then by the colours' confidence; each result says what
  matched ("red shirt, white cap").
- *CLIP*, when its weights are in MODELS_DIR: the query, put into English ("a runner
  wearing a red shirt and a white cap"), is compared with every photo's image embedding.
  CLIP's similarities have no meaning in themselves (a good match may score 0.27 for one
  query and 0.31 for another), so a photo is kept when it stands out of the event's own
  distribution for this query: a robust z-score (distance above the median in units of
  the median absolute deviation) of at least ``CLIP_MIN_Z``, at most ``CLIP_MAX_RESULTS``
  of them. An ordinary photo is never a match, so the whole event is never listed. The
  event's hnswlib CLIP index gives the closest photos and a random sample of its vectors
  the query's ordinary scores, so a search costs the same in an event of 200 or 200,000.
  French queries are translated word by word before CLIP: the vocabulary is the parser's
  own, so the translation is exact, and the English ViT-B-32 of ``fetch_models`` stays the
  one model (a multilingual CLIP would double the weights and could not be measured here).
"""

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import Case, F, FloatField, IntegerField, Q, Value, When
from django.db.models.functions import Greatest
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from pgvector.django import CosineDistance

from mlpipeline import availability, indexes, loaded
from mlpipeline.bibrules import canonical
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.outfit import PALETTE, REGIONS
from mlpipeline.vectors import normalised
from photos.models import Outfit, Photo
from search import services
from search.services import Match, SearchError

MAX_QUERY_LENGTH = 200
#: photos an outfit search returns at most (a common colour can match a third of an event)
MAX_RESULTS = 600
#: CLIP: how far above the event's median a photo must score, in robust standard deviations
CLIP_MIN_Z = 3.0
CLIP_MAX_RESULTS = 120
#: an index with fewer vectors than this gives no spread to trust: PostgreSQL scores them all
CLIP_MIN_SAMPLE = 30
#: the median absolute deviation times this estimates a standard deviation
MAD_TO_SIGMA = 1.4826

MODE_COLOURS = availability.OUTFIT_SEARCH_COLOURS
MODE_CLIP = availability.OUTFIT_SEARCH_CLIP
#: the reason code of a CLIP match (colour matches carry "outfit:<region>:<colour>")
REASON_CLIP = "outfit-clip"

# Words are compared lower-case and without accents ("débardeur" = "debardeur").
COLOUR_WORDS = {
    "white": ("white", "blanc", "blanche", "blancs", "blanches"),
    "black": ("black", "noir", "noire", "noirs", "noires"),
    "grey": ("grey", "gray", "gris", "grise", "grises"),
    "red": ("red", "rouge", "rouges"),
    "orange": ("orange", "oranges"),
    "yellow": ("yellow", "jaune", "jaunes"),
    "green": ("green", "vert", "verte", "verts", "vertes"),
    "blue": ("blue", "bleu", "bleue", "bleus", "bleues"),
    "navy": ("navy", "marine"),
    "purple": ("purple", "violet", "violette", "violets", "violettes", "mauve", "mauves"),
    "pink": ("pink", "rose", "roses"),
    "brown": ("brown", "marron", "marrons", "brun", "brune", "bruns", "brunes"),
}
GARMENT_WORDS = {
    "shirt": ("shirt", "shirts", "tshirt", "tshirts", "tee", "tees", "top", "tops", "jersey",
              "jerseys", "singlet", "singlets", "tank", "vest", "maillot", "maillots",
              "debardeur", "debardeurs", "teeshirt", "teeshirts", "haut", "hauts"),
    "cap": ("cap", "caps", "hat", "hats", "visor", "visors", "beanie", "casquette",
            "casquettes", "bonnet", "bonnets", "chapeau", "chapeaux", "visiere", "visieres"),
    "legs": ("shorts", "short", "tights", "tight", "leggings", "legging", "pants", "trousers",
             "collant", "collants", "cuissard", "cuissards", "pantalon", "pantalons",
             "corsaire", "corsaires"),
}
#: "dark blue", "bleu foncé": navy; "light", "clair" and the like change nothing we can tell
DARK_WORDS = frozenset({"dark", "fonce", "foncee", "fonces", "foncees"})
SHADE_WORDS = frozenset({"light", "pale", "bright", "clair", "claire", "clairs", "claires",
                         "vif", "vive", "vifs", "vives", "fluo"})
#: words that say nothing about the outfit: left out
FILLER_WORDS = frozenset({
    "a", "an", "the", "and", "with", "in", "on", "wearing", "wears", "my", "i", "me", "am",
    "was", "or", "of", "un", "une", "des", "de", "du", "le", "la", "les", "l", "d", "avec",
    "et", "en", "mon", "ma", "mes", "je", "j", "porte", "portais", "portant", "ou", "au",
})

_COLOUR_OF = {word: colour for colour, words in COLOUR_WORDS.items() for word in words}
_GARMENT_OF = {word: region for region, words in GARMENT_WORDS.items() for word in words}

#: English words for CLIP, by region
CLIP_GARMENTS = {"shirt": "shirt", "cap": "cap", "legs": "shorts"}


@dataclass(frozen=True)
class Part:
    """One colour of the query, on one region (cap, shirt, legs) or on any (None)."""

    colour: str
    region: str | None = None


@dataclass(frozen=True)
class OutfitQuery:
    parts: tuple[Part, ...]

    def english(self) -> str:
        """The query in English words, for CLIP."""
        described = [f"{part.colour} {CLIP_GARMENTS[part.region]}" if part.region
                     else f"{part.colour} clothes" for part in self.parts]
        return "a photo of a runner wearing " + " and ".join(described)


def _words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(char for char in plain if not unicodedata.combining(char))
    plain = re.sub(r"\b(t|tee)-(shirts?)\b", r"\1\2", plain)  # t-shirt, tee-shirt
    return re.findall(r"[a-z]+", plain)


def understood() -> str:
    """What the parser understands, as a sentence in the current language."""
    colours = ", ".join(str(colour_name(colour, "shirt")) for colour in PALETTE)
    garments = ", ".join(str(name) for name in (
        pgettext("outfit garment", "shirt"), pgettext("outfit garment", "cap"),
        pgettext("outfit garment", "shorts"), pgettext("outfit garment", "tights")))
    return _("Describe the outfit with colours (%(colours)s) and garments (%(garments)s), "
             "e.g. “red shirt white cap”.") % {"colours": colours, "garments": garments}


def parse(text: str) -> OutfitQuery:
    """The parts of an outfit description, or SearchError saying what was not understood."""
    text = (text or "").strip()
    if not text:
        raise SearchError(understood())
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchError(_("Describe the outfit in fewer words (at most %(count)d "
                            "characters).") % {"count": MAX_QUERY_LENGTH})
    tokens, unknown = [], []
    words = _words(text)
    darker = False  # "dark" just before "blue"
    for index, word in enumerate(words):
        if word in _GARMENT_OF:
            tokens.append(("garment", _GARMENT_OF[word]))
        elif word in ("marine", *DARK_WORDS) and tokens and tokens[-1] == ("colour", "blue"):
            tokens[-1] = ("colour", "navy")  # bleu marine, bleu foncé
        elif word in _COLOUR_OF:
            colour = _COLOUR_OF[word]
            tokens.append(("colour", "navy" if darker and colour == "blue" else colour))
        elif word in DARK_WORDS:
            darker = index + 1 < len(words) and _COLOUR_OF.get(words[index + 1]) == "blue"
            continue
        elif not (word in SHADE_WORDS or word in FILLER_WORDS):
            unknown.append(word)
        darker = False
    if unknown:
        raise SearchError(_("Not understood: %(words)s. %(understood)s") % {
            "words": ", ".join(f"“{word}”" for word in dict.fromkeys(unknown)),
            "understood": understood()})
    merged = tokens
    parts = _pair(merged)
    if not parts:
        raise SearchError(_("Give a colour too. %(understood)s") % {"understood": understood()})
    return OutfitQuery(tuple(dict.fromkeys(parts)))


def _pair(tokens: list[tuple[str, str]]) -> list[Part]:
    """Colours tied to garments. A description that starts with a garment is French in
    order ("maillot rouge et blanc, casquette noire"): each colour belongs to the garment
    before it. Otherwise it is English ("red and white shirt, black cap"): each colour
    belongs to the garment after it. A colour with no garment on its side fits any."""
    parts: list[Part] = []
    if tokens and tokens[0][0] == "garment":
        garment = None
        for kind, value in tokens:
            if kind == "garment":
                garment = value
            else:
                parts.append(Part(value, garment))
        return parts
    waiting: list[str] = []
    for kind, value in tokens:
        if kind == "colour":
            waiting.append(value)
        else:
            parts += [Part(colour, value) for colour in waiting]
            waiting = []
    return parts + [Part(colour) for colour in waiting]


# --- Words of the results ----------------------------------------------------------------

def colour_name(colour: str, region: str):
    """A colour as an adjective of the region's garment (French agrees with it)."""
    if region == "cap":
        names = {
            "white": pgettext("colour of a cap", "white"),
            "black": pgettext("colour of a cap", "black"),
            "grey": pgettext("colour of a cap", "grey"),
            "red": pgettext("colour of a cap", "red"),
            "orange": pgettext("colour of a cap", "orange"),
            "yellow": pgettext("colour of a cap", "yellow"),
            "green": pgettext("colour of a cap", "green"),
            "blue": pgettext("colour of a cap", "blue"),
            "navy": pgettext("colour of a cap", "navy"),
            "purple": pgettext("colour of a cap", "purple"),
            "pink": pgettext("colour of a cap", "pink"),
            "brown": pgettext("colour of a cap", "brown"),
        }
    else:
        names = {
            "white": pgettext("colour of a shirt or shorts", "white"),
            "black": pgettext("colour of a shirt or shorts", "black"),
            "grey": pgettext("colour of a shirt or shorts", "grey"),
            "red": pgettext("colour of a shirt or shorts", "red"),
            "orange": pgettext("colour of a shirt or shorts", "orange"),
            "yellow": pgettext("colour of a shirt or shorts", "yellow"),
            "green": pgettext("colour of a shirt or shorts", "green"),
            "blue": pgettext("colour of a shirt or shorts", "blue"),
            "navy": pgettext("colour of a shirt or shorts", "navy"),
            "purple": pgettext("colour of a shirt or shorts", "purple"),
            "pink": pgettext("colour of a shirt or shorts", "pink"),
            "brown": pgettext("colour of a shirt or shorts", "brown"),
        }
    return names[colour]


def describe(region: str, colour: str) -> str:
    """"red shirt", "maillot rouge", "casquette blanche"."""
    patterns = {"cap": _("%(colour)s cap"), "shirt": _("%(colour)s shirt"),
                "legs": _("%(colour)s shorts")}
    return patterns[region] % {"colour": colour_name(colour, region)}


def reason_code(region: str, colour: str) -> str:
    return f"outfit:{region}:{colour}"


def reason_label(code: str) -> str | None:
    """The words of an outfit reason code ("outfit:shirt:red" → "red shirt"); None for a
    code that is not one."""
    if code == REASON_CLIP:
        return _("Outfit like your description")
    match = re.fullmatch(r"outfit:(\w+):(\w+)", code)
    if not match or match[1] not in REGIONS or match[2] not in PALETTE:
        return None
    return describe(match[1], match[2])


# --- Search ------------------------------------------------------------------------------

def active_mode() -> str:
    """Which outfit search this machine runs: CLIP when its weights are here, else colours."""
    return availability.outfit_search()


def photos_by_outfit(event, text: str) -> list[Match]:
    """The event's photos matching an outfit description, best first, each with why."""
    query = parse(text)
    if active_mode() == MODE_CLIP:
        try:
            matches = photos_by_clip(event, query)
        except ModelUnavailable:
            matches = None  # the weights would not load: the colours still answer
        if matches is not None:
            return matches
    return photos_by_colours(event, query)


def _part_confidence(part: Part):
    """SQL: the confidence with which one runner's outfit shows ``part`` (0 if it does not)."""
    regions = (part.region,) if part.region else REGIONS
    cases = [Case(When(**{region: part.colour}, then=F(f"{region}_confidence")),
                  default=Value(0.0), output_field=FloatField()) for region in regions]
    return cases[0] if len(cases) == 1 else Greatest(*cases)


def _part_filter(part: Part) -> Q:
    regions = (part.region,) if part.region else REGIONS
    condition = Q()
    for region in regions:
        condition |= Q(**{region: part.colour})
    return condition


def photos_by_colours(event, query: OutfitQuery) -> list[Match]:
    """Photos with a runner wearing the query's colours: the runner matching most parts
    decides a photo's rank, then the colours' confidence."""
    anything = Q()
    matched = Value(0, output_field=IntegerField())
    confidence = Value(0.0, output_field=FloatField())
    for part in query.parts:
        anything |= _part_filter(part)
        matched = matched + Case(When(_part_filter(part), then=Value(1)), default=Value(0),
                                 output_field=IntegerField())
        confidence = confidence + _part_confidence(part)
    # One row per photo: its best runner (PostgreSQL's DISTINCT ON); then the best photos,
    # ranked and cut in the database: a common colour matches thousands of runners, and
    # sending them all to Python to keep MAX_RESULTS was most of a search's time.
    best_runners = (Outfit.objects.filter(event=event).filter(anything)
                    .annotate(matched=matched, confidence=confidence)
                    .order_by("photo_id", "-matched", "-confidence")
                    .distinct("photo_id")
                    .values_list("photo_id", "matched", "confidence", "cap", "shirt", "legs"))
    sql, params = best_runners.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT photo_id, matched, confidence, cap, shirt, legs FROM ({sql}) AS best "
                       "ORDER BY matched DESC, confidence DESC, photo_id LIMIT %s",
                       [*params, MAX_RESULTS])
        ranked = cursor.fetchall()
    matches = []
    for photo_id, count, score, *colours in ranked:
        worn = dict(zip(REGIONS, colours))
        reasons = []
        for part in query.parts:
            regions = (part.region,) if part.region else REGIONS
            reasons += [reason_code(region, part.colour) for region in regions
                        if worn[region] == part.colour]
        matches.append(Match(photo_id, round(count + score / (len(query.parts) + 1), 4),
                             tuple(dict.fromkeys(reasons))))
    return matches


def photos_by_clip(event, query: OutfitQuery) -> list[Match] | None:
    """Photos whose CLIP embedding stands out for the query in this event's distribution;
    None when no photo of the event has an embedding of the current model yet.

    The event's CLIP index answers the closest photos; a random sample of the event's
    vectors gives the query's ordinary scores (their median and spread), so the cut-off
    is the query's own. Before the event's index exists, every photo is scored in
    PostgreSQL instead."""
    embedder = loaded.clip_embedder()
    vector = normalised(np.asarray(embedder.embed_text(query.english())).reshape(1, -1))[0]
    ordinary = indexes.sample(event.pk, indexes.CLIP, embedder.signature)
    if len(ordinary) >= CLIP_MIN_SAMPLE:
        median, spread = _spread(ordinary @ vector)
        if spread is None:
            return []
        found = indexes.nearest(event.pk, indexes.CLIP, embedder.signature, vector,
                                CLIP_MAX_RESULTS)
        return [Match(photo_id, round(z, 3), (REASON_CLIP,)) for photo_id, similarity in found
                if (z := (similarity - median) / spread) >= CLIP_MIN_Z]
    rows = list(Photo.objects.filter(event=event, clip_model=embedder.signature)
                .exclude(clip_embedding=None)
                .annotate(distance=CosineDistance("clip_embedding", vector.tolist()))
                .values_list("pk", "distance"))
    if not rows:
        return None
    ids = np.array([pk for pk, _distance in rows])
    scores = 1.0 - np.array([distance for _pk, distance in rows], dtype=np.float64)
    return [Match(int(ids[index]), round(float(z), 3), (REASON_CLIP,))
            for index, z in _standing_out(scores)]


def _spread(scores: np.ndarray) -> tuple[float, float | None]:
    """The median of ``scores`` and their robust standard deviation (None: all alike)."""
    median = float(np.median(scores))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(scores - median)))
    return median, (spread if spread > 1e-9 else None)


def _standing_out(scores: np.ndarray) -> list[tuple[int, float]]:
    """(index, robust z-score) of the scores far above the others, highest first."""
    median, spread = _spread(scores)
    if spread is None:  # every photo scores alike: none stands out
        return []
    z = (scores - median) / spread
    order = np.argsort(-z)[:CLIP_MAX_RESULTS]
    return [(int(index), float(z[index])) for index in order if z[index] >= CLIP_MIN_Z]


def combine(bib_matches: list[Match], outfit_matches: list[Match]) -> list[Match]:
    """A bib and an outfit searched together: photos matching both first, then the bib's,
    then the outfit's, each with every reason it has."""
    outfit_of = {match.photo_id: match for match in outfit_matches}
    bib_ids = {match.photo_id for match in bib_matches}
    both = [Match(match.photo_id, match.score, match.reasons + outfit_of[match.photo_id].reasons)
            for match in bib_matches if match.photo_id in outfit_of]
    return (both + [match for match in bib_matches if match.photo_id not in outfit_of]
            + [match for match in outfit_matches if match.photo_id not in bib_ids])


# --- The page's search ---------------------------------------------------------------------

def search_matches(event, raw_outfit: str, raw_bib: str = "") -> list[Match]:
    """The matches of an outfit search, alone or with a bib (photos matching both first);
    SearchError when either cannot be searched."""
    matches = photos_by_outfit(event, raw_outfit)
    if raw_bib:
        matches = combine(services.photos_by_bib(event, raw_bib), matches)
    return matches


def search_context(event, raw_outfit: str, raw_bib: str = "", start: int = 0) -> dict:
    """The context of an outfit search, alone or with a bib (?outfit=…&bib=…): one page of
    photos, the photos matching both first, each saying why, or what went wrong."""
    from search import gallery, views  # the page's helpers; views imports this module

    context = {"searched": "outfit", "outfit_query": raw_outfit, "bib_query": raw_bib,
               "outfit_mode": active_mode()}
    try:
        matches = search_matches(event, raw_outfit, raw_bib)
    except SearchError as error:
        return {**context, "search_error": str(error)}
    query = {}
    if raw_bib:
        bib = canonical(raw_bib)
        query["bib"] = bib
        context.update(bib=bib, runner=views.runner_label(event, bib))
    query["outfit"] = raw_outfit
    # Which matches a runner may see, by id only: the photos themselves are loaded for the
    # page shown, not for every match (a common colour matches hundreds).
    public = set(gallery.public_photos(event).filter(pk__in=[match.photo_id for match in matches])
                 .order_by().values_list("pk", flat=True))
    visible = [match for match in matches if match.photo_id in public]
    shown = views._ranked_public_photos(event, visible[start:start + gallery.PAGE_SIZE])
    more_url = ""
    if start + gallery.PAGE_SIZE < len(visible):
        more_url = views._list_url(event, {**query, "start": start + gallery.PAGE_SIZE})
    # A photo's page follows the search it was opened from (search/views.py).
    return {**context, "total": len(visible),
            "tiles": views._tiles(event, shown, matches, query),
            "more_url": more_url,
            "processing": "" if visible else views._processing_message(event)}
