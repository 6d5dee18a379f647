"""The machine-learning steps of a photo: faces, bibs, outfit colours, CLIP embedding.

Steps (registered in ``MlpipelineConfig.ready``) run inside the photo's
pipeline transaction (see :mod:`photos.pipeline`): whatever they write is
committed together with the step's "done" record, so a crash never leaves
half a result. Each step replaces its own earlier output, which makes running
it again harmless. The event-wide work they cause (index updates, linking
faces to bibs across the event) is scheduled after the commit by
:mod:`mlpipeline.tasks`.

Order: faces, then bibs (the reader looks below each face first and the
geometry links each bib to the face above it), then the outfit colours under each
face (with the bibs read masked out of the shirts), then the CLIP embedding.
"""

import numpy as np
from PIL import Image

from accounts import privacy
from mlpipeline import allocator, linking, loaded, tasks
from mlpipeline.bibrules import rules_for_event
from mlpipeline.inference.base import ModelUnavailable
from photos import imaging
from photos.models import BibTag, Face, Outfit, Photo
from photos.pipeline import PermanentStepError

# Faces and bibs are looked for on the photo at most this size: a 24 MP
# original costs four times the time of 2048 px for no more runners found.
ANALYSIS_SIZE = 2048
# CLIP looks at 224 px; decoding the web copy at twice that keeps resizing honest.
CLIP_DECODE_SIZE = 448
# Small runners are looked for on a larger copy than the analysis one: YuNet finds faces
# of about 10 px and more, which on the 2048 px copy of a 24 MP frame is a 30 px face
# (bench/crowd.py: half of the bibs missed were under such faces). 3000 px is the
# half-scale decode of a 24 MP JPEG, the one its analysis copy is made from.
SMALL_FACE_SIZE = 3000


# --- Images ------------------------------------------------------------------------------

def _decoded(photo: Photo) -> imaging.DecodedPhoto:
    """The photo's original, decoded: shared with the derivatives step and between the
    analysis steps that run after it in this thread (one decode per scale)."""
    def read() -> bytes:
        with photo.original.open("rb") as handle:
            return handle.read()

    try:
        return imaging.decoded((photo.original.name, photo.content_hash), read)
    except imaging.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc


def _analysis_image(photo: Photo):
    """The upright photo at analysis size and its scale to the original's pixels."""
    decoded = _decoded(photo)
    try:
        image = decoded.image(ANALYSIS_SIZE)
    except imaging.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc
    return image, decoded.size[0] / image.width


def _scaled(box, factor: float) -> list[float]:
    return [round(float(value) * factor, 1) for value in box]


# --- Faces -------------------------------------------------------------------------------


def detect_faces(photo: Photo) -> int:
    """Find and embed the photo's faces, replacing earlier ones; how many were found."""
    detector, embedder = loaded.face_detector(), loaded.face_embedder()
    detector.ensure_loaded()
    embedder.ensure_loaded()  # both or neither: faces without vectors could not be searched
    image, scale = _analysis_image(photo)
    found = detector.photo_faces(image)
    vectors = embedder.predict(image, found) if found else np.empty((0, 0), dtype=np.float32)
    photo.faces.all().delete()
    Face.objects.bulk_create([
        Face(photo=photo, event_id=photo.event_id, box=_scaled(face.box, scale),
             score=float(face.score), embedding=vector.tolist(), model=embedder.signature)
        for face, vector in zip(found, vectors)
    ])
    # The database decides each new face's searchable flag (accounts migration 0003), and
    # bulk_create tells the indexes (photos.models.faces_written).
    return len(found)


# --- Bibs --------------------------------------------------------------------------------


def read_bibs(photo: Photo) -> int:
    """Read the photo's bib numbers, link each to the face above it; how many were kept."""
    reader = loaded.bib_reader()
    reader.ensure_loaded()
    # What the faces step freed (MTCNN's image pyramid, 0.1-0.2 GB on a 24 MP photo) is still
    # this process's heap: handed back now, it does not sit under this step's peak.
    allocator.release_free_memory()
    image, scale = _analysis_image(photo)
    decoded = _decoded(photo)
    faces = list(photo.faces.order_by("pk"))
    face_boxes = [_scaled(face.box, 1 / scale) for face in faces]
    # Runners too small to be stored as faces still carry bibs that are legible in the
    # original: the reader looks under them too, at the original's resolution.
    small = small_faces(decoded, image, face_boxes)
    rules = rules_for_event(photo.event)
    # The rules steer the reader's second look to torsos where no keepable bib was read.
    try:
        readings = reader.predict(image, faces=face_boxes + small, keeps=rules.keeps,
                                  detail=decoded.detail, original_scale=scale)
    except imaging.InvalidImage as exc:  # the original's full resolution could not be decoded
        raise PermanentStepError(exc.reason) from exc
    finally:
        decoded.forget_detail()  # the outfit step needs only the analysis copy
    accepted = rules.accept(readings)

    # What a person decided stays: a bib tagged by hand is not read over, and a bib a
    # person rejected on this photo is never read onto it again.
    decided = set(photo.bib_tags.filter(source=BibTag.Source.MANUAL).values_list("bib", flat=True))
    decided |= set(photo.rejected_readings.values_list("bib", flat=True))
    # An erased runner's bib is never tagged again, on photos uploaded later too.
    accepted = [bib for bib in accepted
                if bib.text not in decided and not privacy.is_bib_erased(photo.event, bib.text)]
    # Kept unconfirmed, linked to no face: the organiser reviews them, runners never see them.
    off_list = [bib for bib in rules.off_list(readings, accepted)
                if bib.text not in decided and not privacy.is_bib_erased(photo.event, bib.text)]
    # A corrected reading is linked to no face until it is confirmed (mlpipeline.corrections):
    # a wrong correction would otherwise name a stranger's face with a listed runner's bib.
    linkable = [index for index, bib in enumerate(accepted) if not bib.read_as]
    pairs = linking.assign_bibs_to_faces([accepted[index].box for index in linkable], face_boxes)
    face_of = {linkable[bib_index]: faces[face_index] for bib_index, face_index, _conf in pairs}

    photo.bib_tags.filter(source=BibTag.Source.OCR).delete()
    # What OCR reads outranks what face linking or the timing guessed for this photo.
    photo.bib_tags.filter(source__in=[BibTag.Source.FACE_LINK, BibTag.Source.TIMING],
                          bib__in=[bib.text for bib in accepted]).delete()
    BibTag.objects.bulk_create([
        BibTag(photo=photo, bib=bib.text, confidence=float(bib.confidence),
               source=BibTag.Source.OCR, confirmed=bib.confirmed, read_as=bib.read_as,
               box=_scaled(bib.box, scale), face=face_of.get(index))
        for index, bib in enumerate(accepted)
    ])
    # A face-link tag of a bib since taken off the start list stays as it is.
    linked_here = set(photo.bib_tags.filter(source__in=[BibTag.Source.FACE_LINK,
                                                        BibTag.Source.TIMING])
                      .values_list("bib", flat=True))
    BibTag.objects.bulk_create([
        BibTag(photo=photo, bib=bib.text, confidence=bib.confidence, source=BibTag.Source.OCR,
               confirmed=False, box=_scaled(bib.box, scale))
        for bib in off_list if bib.text not in linked_here
    ])
    linked = {face.pk: accepted[index].text for index, face in face_of.items()}
    for face in faces:
        bib = linked.get(face.pk, "")
        if face.bib != bib:
            # The database re-decides the face's searchable flag for its new bib (an
            # opted-out runner's face leaves search at once) and update() tells the indexes.
            Face.objects.filter(pk=face.pk).update(bib=bib)
    # A new face must join its runner's cluster even where no bib was read: that is how a
    # photo with a hidden bib gets the runner's bib by face, and is found by bib search.
    if accepted or faces:
        tasks.links_changed(photo.event_id)  # which also redoes the suggestions
    else:
        tasks.suggestions_changed(photo.event_id)
    return len(accepted)


def small_faces(decoded: imaging.DecodedPhoto, image, known) -> list[list[float]]:
    """Boxes (pixels of the analysis copy ``image``) of the photo's faces too small to be
    stored, for the bib reader, found on a copy of up to SMALL_FACE_SIZE px; none when
    face detection cannot run here (the bibs are then read under the stored faces only)."""
    try:
        detector = loaded.face_detector().ensure_loaded()
    except ModelUnavailable:
        return []
    try:
        finder = decoded.detail(SMALL_FACE_SIZE)
    except imaging.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc
    if max(finder.size) >= max(decoded.size):
        # No decode between the analysis copy and the original (a 6 MP photo): the
        # analysis copy itself, a full decode would cost more than it finds.
        finder = image
    elif max(finder.size) > SMALL_FACE_SIZE:  # the half-scale decode of a 45 MP photo
        finder = imaging.shrink(finder, imaging.fit(finder.size, SMALL_FACE_SIZE),
                                Image.Resampling.BILINEAR)
    factor = finder.width / image.width
    found = detector.small_faces(finder, decoded.size[0] / finder.width, _scaled_all(known, factor))
    allocator.release_free_memory()  # YuNet's layer outputs, before the bib reader's own
    return [_scaled(face.box, 1 / factor) for face in found]


def _scaled_all(boxes, factor: float) -> list[list[float]]:
    return [_scaled(box, factor) for box in boxes]


# --- Outfit colours ---------------------------------------------------------------------


def read_outfits(photo: Photo) -> int:
    """Name the colours worn under each face, replacing earlier ones; how many runners."""
    reader = loaded.outfit_reader()
    reader.ensure_loaded()
    faces = list(photo.faces.order_by("pk"))
    photo.outfits.all().delete()
    if not faces:
        return 0
    image, scale = _analysis_image(photo)
    bibs = [_scaled(box, 1 / scale) for box in
            photo.bib_tags.exclude(box=None).values_list("box", flat=True)]
    found = reader.predict(image, [_scaled(face.box, 1 / scale) for face in faces], bibs)
    rows = []
    for face, outfit in zip(faces, found):
        if outfit is None or not (outfit.cap or outfit.shirt or outfit.legs):
            continue
        fields = {}
        for region in ("cap", "shirt", "legs"):
            colour = getattr(outfit, region)
            fields[region] = colour.colour if colour else ""
            fields[f"{region}_confidence"] = colour.confidence if colour else 0.0
        rows.append(Outfit(photo=photo, event_id=photo.event_id, face=face,
                           model=reader.signature, **fields))
    Outfit.objects.bulk_create(rows)
    return len(rows)


# --- CLIP --------------------------------------------------------------------------------


def embed_image(photo: Photo) -> None:
    """The CLIP embedding of the photo, from its web copy (CLIP looks at 224 px)."""
    embedder = loaded.clip_embedder()
    embedder.ensure_loaded()
    with photo.web.open("rb") as handle:
        data = handle.read()
    try:
        image, _size = imaging.decode_upright(data, CLIP_DECODE_SIZE)
    except imaging.InvalidImage as exc:
        raise PermanentStepError(exc.reason) from exc
    photo.clip_embedding = embedder.predict(image).tolist()
    photo.clip_model = embedder.signature
    photo.save(update_fields=["clip_embedding", "clip_model", "updated_at"])
