"""Finding a runner's photos: by bib number, by a selfie, by both.

"All my photos": a bib search returns the photos where the bib was read, carried over
by face linking or tagged by hand, and the other photos of the face clusters those tags
point at (the runner's face seen again where the number is hidden). A combined search
is the union of the bib's photos, the selfie's matches and the photos of the clusters
the selfie matched. Clusters are followed through searchable faces only, so an
opted-out runner is never found through their face.

A selfie is decoded and embedded in memory and dropped when the function
returns: it is never written to disk, to the database or to a log.
"""

import io
import logging
from dataclasses import dataclass

from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from PIL import Image, ImageOps

from accounts import privacy
from accounts.models import BibClaim
from events.models import StartListEntry
from mlpipeline import indexes, loaded
from mlpipeline.bibrules import canonical
from mlpipeline.inference.base import ModelUnavailable
from mlpipeline.inference.faces import embed_selfie
from photos.models import BibTag, Face
from photos.tags import shown_tags

logger = logging.getLogger(__name__)

SELFIE_MAX_BYTES = 15 * 1024 * 1024
SELFIE_MAX_PIXELS = 40_000_000
# A selfie's face fills much of the frame: 640 px leave it 200+ px wide (SFace reads
# 112 px) and cost MTCNN under half of 1024 px (bench/search.py selfie).
SELFIE_ANALYSIS_SIZE = 640
# Faces of one selfie offered to pick from (a group selfie): each costs an embedding and a search.
SELFIE_FACES_OFFERED = 4
SELFIE_CROP_SIZE = 160
# Faces a selfie search finds at most: a runner rarely has more photos than this in one
# event, and every hit is then checked against the database. The index is asked for fewer
# first and more only while they all match (mlpipeline.indexes.candidates).
FACE_CANDIDATES = 500


class SearchError(Exception):
    """The search cannot be done; ``str()`` is a sentence for the runner."""


# Why a photo matched, beside BibTag.Source's values (bib read, carried over by face, by hand).
REASON_FACE = "face"
# The bib's runner's face cluster (same person, number not read on this photo).
REASON_CLUSTER = "cluster"
# The face cluster of a face like the selfie.
REASON_SELFIE_CLUSTER = "selfie-cluster"
# The event has no start list: a reading is shown when confident enough, as probable.
REASON_PROBABLE = "probable"

# Ranking of combined results: the most certain reason first; ties by score.
_REASON_RANK = {
    BibTag.Source.MANUAL: 0,
    BibTag.Source.OCR: 0,
    BibTag.Source.FACE_LINK: 1,
    REASON_CLUSTER: 1,
    BibTag.Source.TIMING: 2,
    REASON_FACE: 2,
    REASON_SELFIE_CLUSTER: 3,
}


def reason_labels() -> dict[str, str]:
    """What each reason code says to the runner, in the active language."""
    return {
        BibTag.Source.OCR: gettext("Bib read on the photo"),
        BibTag.Source.FACE_LINK: gettext("Bib carried over by the face"),
        BibTag.Source.MANUAL: gettext("Tagged by hand"),
        BibTag.Source.TIMING: gettext("Passed the timing mat as the photo was taken"),
        REASON_CLUSTER: gettext("Same runner's face, bib hidden"),
        REASON_FACE: gettext("Face like your selfie"),
        REASON_SELFIE_CLUSTER: gettext("Same runner as a face like your selfie"),
        REASON_PROBABLE: gettext("Probable (no start list)"),
    }


def runner_label(event, bib) -> str:
    """The runner wearing ``bib`` as the start list names them, first name and initial only
    ("Marie D."): enough to recognise oneself, not enough to identify a stranger."""
    entry = StartListEntry.objects.filter(event=event, bib=bib).only(
        "first_name", "last_name").first()
    if entry is None:
        return ""
    initial = entry.last_name.strip()[:1].upper()
    return " ".join(part for part in (entry.first_name.strip(), f"{initial}." if initial else "")
                    if part)


@dataclass(frozen=True)
class Match:
    photo_id: int
    score: float  # cosine similarity of the best face, or the bib tag's confidence
    # Why it matched: BibTag.Source values and REASON_CLUSTER for a bib search, REASON_FACE
    # and REASON_SELFIE_CLUSTER for a selfie; REASON_PROBABLE beside them without a start list.
    reasons: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return min((_REASON_RANK[reason] for reason in self.reasons if reason in _REASON_RANK),
                   default=len(_REASON_RANK))


@dataclass(frozen=True)
class SelfieFace:
    """One more face of a selfie that showed several, for the runner to pick theirs."""

    # A small JPEG of the face, sent back to the runner who sent the selfie and never
    # stored: they cannot point at "the one on the left" otherwise.
    crop: bytes
    matches: list[Match]
    clusters: frozenset[int] = frozenset()


@dataclass(frozen=True)
class SelfieResult:
    matches: list[Match]  # of the selfie's largest face
    # How many faces the selfie showed; with several, the largest one was searched.
    faces_found: int
    # With several faces: the largest first, then the next ones (up to SELFIE_FACES_OFFERED),
    # each searched too, so the runner can switch to theirs without sending it again.
    faces: tuple[SelfieFace, ...] = ()
    # Face clusters of the searchable faces that matched the largest face.
    clusters: frozenset[int] = frozenset()


# BibTag.bib holds 12 characters.
BIB_MAX_DIGITS = 12


def valid_bib(bib: str) -> str:
    """``bib`` as the start list writes it, or :class:`SearchError` when it is no bib number."""
    bib = canonical(bib)
    if not bib:
        raise SearchError(_("Type your bib number first."))
    if not bib.isascii() or not bib.isdigit():
        raise SearchError(_("A bib number is made of digits only."))
    if len(bib) > BIB_MAX_DIGITS:
        raise SearchError(_("A bib number has at most %(digits)d digits.") % {"digits": BIB_MAX_DIGITS})
    return bib


def photos_by_bib(event, bib: str) -> list[Match]:
    """All the event's photos of the runner wearing ``bib``, most certain first.

    The photos tagged with it (read, carried over by face, by hand), then the other
    photos of the face clusters those tags' faces belong to. A result nothing confirms
    (an event without a start list: a confident reading, or what face linking carried
    from such readings) says it is probable.
    """
    bib = valid_bib(bib)
    found = _bib_evidence(event, {bib})[bib]
    best: dict[int, float] = {}
    reasons: dict[int, list[str]] = {}
    sure: set[int] = set()  # photos with a confirmed tag of the bib: not only probable
    for photo_id, confidence, source, _face_id, confirmed in found.tags:
        best.setdefault(photo_id, confidence)
        reasons.setdefault(photo_id, []).append(source)
        if confirmed or source == BibTag.Source.MANUAL:
            sure.add(photo_id)
    matches = []
    for photo_id, score in best.items():
        # Probable: read with nothing to confirm it (no start list), or carried from such readings.
        probable = () if photo_id in sure else (REASON_PROBABLE,)
        matches.append(Match(photo_id, score, (*reasons[photo_id], *probable)))
    probable = () if sure else (REASON_PROBABLE,)
    # The cluster's photos score 0: no bib was read there.
    matches += [Match(photo_id, 0.0, (REASON_CLUSTER, *probable))
                for photo_id in sorted(found.cluster_photos - best.keys())]
    return ranked(matches)


def photo_ids_by_bib(event, bibs) -> dict[str, set[int]]:
    """The photos :func:`photos_by_bib` finds for each of ``bibs`` (ids only, unranked), in
    the same few queries however many bibs: for a report over hundreds of bundles. A bib
    that is no bib number finds nothing."""
    valid = {}
    for bib in bibs:
        try:
            valid[bib] = valid_bib(bib)
        except SearchError:
            continue
    evidence = _bib_evidence(event, set(valid.values()))
    found = {}
    for bib in bibs:
        bib_evidence = evidence.get(valid.get(bib))
        found[bib] = (set() if bib_evidence is None else
                      {tag[0] for tag in bib_evidence.tags} | bib_evidence.cluster_photos)
    return found


@dataclass
class _BibEvidence:
    # The bib's shown tags, most confident first: (photo, confidence, source, face, confirmed).
    tags: list[tuple[int, float, str, int | None, bool]]
    # The photos of the bib's runner's face clusters (some may be tagged too).
    cluster_photos: set[int]


def _bib_evidence(event, bibs: set[str]) -> dict[str, _BibEvidence]:
    """What finds the photos of each of ``bibs`` (valid bib numbers), in a fixed number of
    queries: the shown tags, and the photos of the runner's face clusters."""
    evidence = {bib: _BibEvidence([], set()) for bib in bibs}
    if not bibs:
        return evidence
    # An opted-out runner is not found through their face: not by the tags face linking
    # carried over, not through their clusters (whose faces the database made unsearchable).
    opted_out = set(BibClaim.objects.filter(event=event, bib__in=bibs,
                                            face_search=BibClaim.FaceSearch.OPTED_OUT)
                    .values_list("bib", flat=True))
    tags = shown_tags(event.pk).filter(bib__in=bibs).order_by("-confidence", "pk")
    for bib, *tag in tags.values_list("bib", "photo_id", "confidence", "source", "face_id",
                                      "confirmed"):
        if bib in opted_out and tag[2] == BibTag.Source.FACE_LINK:
            continue
        evidence[bib].tags.append(tuple(tag))
    clusters = _bib_clusters(event, {bib: found.tags for bib, found in evidence.items()
                                     if bib not in opted_out})
    photos_of_cluster = _photos_of_clusters(event, set().union(*clusters.values()))
    for bib, runner_clusters in clusters.items():
        for cluster in runner_clusters:
            evidence[bib].cluster_photos |= photos_of_cluster.get(cluster, set())
    return evidence


def _bib_clusters(event, tags_of_bib: dict[str, list[tuple]]) -> dict[str, set[int]]:
    """Each bib's runner's clusters: those of the searchable faces its shown tags point at,
    or linked to the bib on a photo that shows it. A cluster that also holds a face linked
    to another bib is two runners alike (event_linking leaves those alone too): skipped."""
    bibs_of_face: dict[int, set[str]] = {}
    tagged_photos: dict[str, set[int]] = {}
    for bib, tags in tags_of_bib.items():
        for photo_id, _confidence, _source, face_id, _confirmed in tags:
            tagged_photos.setdefault(bib, set()).add(photo_id)
            if face_id is not None:
                bibs_of_face.setdefault(face_id, set()).add(bib)
    if not tagged_photos:
        return {}
    seeds: dict[str, set[int]] = {}
    candidates = (Face.objects.filter(event=event, searchable=True, cluster__isnull=False)
                  .filter(Q(pk__in=set(bibs_of_face))
                          | Q(bib__in=set(tagged_photos),
                              photo_id__in=set().union(*tagged_photos.values())))
                  .values_list("pk", "bib", "photo_id", "cluster"))
    for face_id, face_bib, photo_id, cluster in candidates:
        for bib in bibs_of_face.get(face_id, ()):
            seeds.setdefault(bib, set()).add(cluster)
        if photo_id in tagged_photos.get(face_bib, ()):
            seeds.setdefault(face_bib, set()).add(cluster)
    if not seeds:
        return {}
    bibs_in_cluster: dict[int, set[str]] = {}
    for cluster, face_bib in (Face.objects.filter(event=event, cluster__in=set().union(*seeds.values()))
                              .exclude(bib="").values_list("cluster", "bib").distinct()):
        bibs_in_cluster.setdefault(cluster, set()).add(face_bib)
    return {bib: {cluster for cluster in found if not bibs_in_cluster.get(cluster, set()) - {bib}}
            for bib, found in seeds.items()}


def _photos_of_clusters(event, clusters) -> dict[int, set[int]]:
    """The photos of each cluster's searchable faces."""
    if not clusters:
        return {}
    photos: dict[int, set[int]] = {}
    for cluster, photo_id in (Face.objects.filter(event=event, searchable=True, cluster__in=clusters)
                              .values_list("cluster", "photo_id").distinct()):
        photos.setdefault(cluster, set()).add(photo_id)
    return photos


def ranked(matches) -> list[Match]:
    """Most certain reason first (bib read, then carried over by face or cluster, then face
    similarity), then by score."""
    return sorted(matches, key=lambda match: (match.rank, -match.score, match.photo_id))


def combine(event, bib_matches: list[Match], selfie: SelfieResult) -> list[Match]:
    """A bib and a selfie together: the union of the bib's photos, the selfie's matches and
    the photos of the clusters the selfie matched, each with every reason it matched for."""
    merged: dict[int, tuple[float, list[str]]] = {}

    def add(photo_id, score, reasons):
        old_score, old_reasons = merged.get(photo_id, (None, []))
        merged[photo_id] = (score if old_score is None else max(old_score, score),
                            [*old_reasons, *(r for r in reasons if r not in old_reasons)])

    for match in bib_matches:
        add(match.photo_id, match.score, match.reasons)
    for match in selfie.matches:
        add(match.photo_id, match.score, match.reasons)
    for photos in _photos_of_clusters(event, selfie.clusters).values():
        for photo_id in photos - merged.keys():
            add(photo_id, 0.0, [REASON_SELFIE_CLUSTER])  # no bib or face of theirs read there
    # The score of a photo found by the bib is the bib's; reasons keep the most certain first.
    result = [Match(photo_id, score, tuple(sorted(
        reasons, key=lambda r: _REASON_RANK.get(r, len(_REASON_RANK)))))
        for photo_id, (score, reasons) in merged.items()]
    return ranked(result)


def _selfie_image(upload) -> Image.Image:
    data = upload.read(SELFIE_MAX_BYTES + 1)
    if len(data) > SELFIE_MAX_BYTES:
        raise SearchError(_("The selfie is too large (at most %(mb)d MB).")
                          % {"mb": SELFIE_MAX_BYTES // (1024 * 1024)})
    try:
        image = Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP"))
        if image.width * image.height > SELFIE_MAX_PIXELS:
            raise SearchError(_("The selfie has too many pixels."))
        image.draft("RGB", (SELFIE_ANALYSIS_SIZE, SELFIE_ANALYSIS_SIZE))
        image = ImageOps.exif_transpose(image).convert("RGB")
    except SearchError:
        raise
    except Exception:
        raise SearchError(_("The selfie could not be read: send a JPEG, PNG or WebP photo.")) \
            from None
    image.thumbnail((SELFIE_ANALYSIS_SIZE, SELFIE_ANALYSIS_SIZE))
    return image


class _FaceRecorder:
    """Passes the detector's faces on and remembers them (how many, and where)."""

    def __init__(self, detector):
        self.detector = detector
        self.faces = []

    def __call__(self, image):
        self.faces = list(self.detector(image))
        return self.faces


def _face_crop(image, face) -> bytes:
    """The face with a margin, small, as JPEG bytes in memory."""
    margin = 0.25 * max(face.width, face.height)
    box = (max(0, round(face.x1 - margin)), max(0, round(face.y1 - margin)),
           min(image.width, round(face.x2 + margin)), min(image.height, round(face.y2 + margin)))
    crop = image.crop(box)
    crop.thumbnail((SELFIE_CROP_SIZE, SELFIE_CROP_SIZE))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def photos_by_selfie(event, upload, limit: int = FACE_CANDIDATES) -> list[Match]:
    """The event's photos with a face like the one in the selfie, most similar first."""
    return selfie_search(event, upload, limit).matches


def selfie_search(event, upload, limit: int = FACE_CANDIDATES) -> SelfieResult:
    """:func:`photos_by_selfie`, with how many faces the selfie showed and, when it showed
    several, the next largest ones searched too (pages let the runner pick theirs)."""
    try:
        privacy.check_face_search(event)
    except privacy.FaceSearchOff:
        raise SearchError(_("The organiser of this event has turned face search off.")) from None
    image = _selfie_image(upload)
    detector, embedder = _FaceRecorder(loaded.face_detector()), loaded.face_embedder()
    crops, other_vectors = [], []
    try:
        vector = embed_selfie(image, detector, embedder)
        if vector is not None and len(detector.faces) > 1:
            # Largest first, as embed_selfie chose: the first crop is the face searched.
            offered = sorted(detector.faces, key=lambda face: face.area,
                             reverse=True)[:SELFIE_FACES_OFFERED]
            other_vectors = list(embedder(image, offered[1:]))
            crops = [_face_crop(image, face) for face in offered]
    except ModelUnavailable as exc:
        logger.error("selfie search unavailable: %s", exc)
        raise SearchError(_("Selfie search is not available at the moment.")) from None
    finally:
        image.close()
    if vector is None:
        raise SearchError(_("No face was found in the selfie: take it facing the camera, "
                            "in good light."))
    matches, clusters = _face_matches(event, embedder, vector, limit)
    faces = ()
    if crops:
        faces = (SelfieFace(crops[0], matches, clusters),) + tuple(
            SelfieFace(crop, *_face_matches(event, embedder, other, limit))
            for crop, other in zip(crops[1:], other_vectors))
    return SelfieResult(matches, len(detector.faces), faces, clusters)


def _face_matches(event, embedder, vector, limit) -> tuple[list[Match], frozenset[int]]:
    """The event's photos with a face like ``vector``, most similar first, and the face
    clusters of the faces that matched."""
    hits = indexes.nearest_matches(event.pk, indexes.FACES, embedder.signature, vector,
                                   embedder.match_threshold, limit)
    # The index may lag a commit by a few seconds; the database has the last word,
    # so an opted-out or erased face never comes back, even from a stale index.
    rows = (Face.objects.filter(pk__in=[face_id for face_id, _s in hits], event=event,
                                searchable=True)
            .values_list("pk", "photo_id", "cluster"))
    photo_of = {face_id: photo_id for face_id, photo_id, _cluster in rows}
    clusters = frozenset(cluster for _face, _photo, cluster in rows if cluster is not None)
    best: dict[int, float] = {}
    for face_id, similarity in hits:
        photo_id = photo_of.get(face_id)
        if photo_id is not None and similarity > best.get(photo_id, -1.0):
            best[photo_id] = similarity
    by_similarity = sorted(best.items(), key=lambda item: -item[1])
    return ([Match(photo_id, round(score, 4), (REASON_FACE,)) for photo_id, score in by_similarity],
            clusters)
