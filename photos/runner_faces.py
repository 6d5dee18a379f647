"""Whose face is this? The faces an event already ties to a bib (the face a reading was
linked to, or a face-link tag's face), one mean vector per bib and face model, to tell
whether a photo's faces are a suggested runner's, someone else's, or nobody known.

Suggestions (photos.timing, photos.sequences) use it to drop a bib from a photo where
every face is another known runner, and to rank first the ones where a face agrees.
"""

from dataclasses import dataclass, field

import numpy as np
from django.db.models import Q

from mlpipeline.inference import registry
from photos.models import BibTag, Face
from photos.tags import shown_tags

SAME, OTHER, UNKNOWN = "same", "other", "unknown"


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / (float(np.linalg.norm(vector)) or 1.0)


def link_threshold(model: str) -> float | None:
    try:
        return registry.link_threshold(model)
    except ValueError:  # a model this installation no longer knows: never compared
        return None


@dataclass
class PhotoFace:
    pk: int
    bib: str  # the bib a reading linked to it on this photo ("" if none)
    model: str
    vector: np.ndarray | None


@dataclass
class RunnerFaces:
    # model -> (bibs, matrix of their mean unit vectors, threshold)
    by_model: dict[str, tuple[list[str], np.ndarray, float]] = field(default_factory=dict)

    @classmethod
    def of_event(cls, event_id: int) -> "RunnerFaces":
        bib_of = dict(shown_tags(event_id).exclude(source=BibTag.Source.TIMING)
                      .filter(face__isnull=False).values_list("face_id", "bib"))
        sums: dict[tuple[str, str], np.ndarray] = {}
        for pk, bib, model, vector in (Face.objects.filter(event_id=event_id,
                                                           embedding__isnull=False)
                                       .filter(~Q(bib="") | Q(pk__in=list(bib_of)))
                                       .values_list("pk", "bib", "model", "embedding")):
            key = (model, bib_of.get(pk) or bib)
            sums[key] = sums.get(key, 0) + _unit(vector)
        found = cls()
        for model in {model for model, _bib in sums}:
            threshold = link_threshold(model)
            if threshold is None:
                continue
            bibs = sorted(bib for key_model, bib in sums if key_model == model)
            found.by_model[model] = (bibs, np.stack([_unit(sums[(model, bib)]) for bib in bibs]),
                                     threshold)
        return found

    def verdict(self, faces: list[PhotoFace], bib: str) -> str:
        """SAME: a face here is ``bib``'s runner; OTHER: every face here is another known
        runner (``bib``'s runner is not in the frame, or hidden with their face too);
        UNKNOWN: the faces cannot tell."""
        embedded = [face for face in faces if face.vector is not None and face.model in self.by_model]
        if not embedded:
            return UNKNOWN
        others = 0
        for face in embedded:
            bibs, vectors, threshold = self.by_model[face.model]
            scores = vectors @ face.vector
            matching = {bibs[index] for index in np.flatnonzero(scores >= threshold)}
            if bib in matching:
                return SAME
            if matching:
                others += 1
        return OTHER if others == len(faces) else UNKNOWN


def photo_faces(photo_ids) -> dict[int, list[PhotoFace]]:
    """Every face of these photos, embedded or not."""
    found: dict[int, list[PhotoFace]] = {}
    for pk, photo_id, bib, model, vector in (Face.objects.filter(photo_id__in=photo_ids)
                                             .values_list("pk", "photo_id", "bib", "model",
                                                          "embedding")):
        found.setdefault(photo_id, []).append(
            PhotoFace(pk, bib, model, None if vector is None else _unit(vector)))
    return found
