"""The real pipeline's outputs on rbnr-dev, computed once and kept in a JSON file.

``bench/search.py`` scores search on what the product's steps produce for every photo:
faces (MTCNN boxes, SFace vectors), bib readings (``BibReader`` steered by the product's
rules, every alternative kept, with and without the set's labelled bibs as start list) and
the selfie vector of every faces-dev/rbnr_runners crop. Those steps take minutes on a
shared CPU and give the same output each time, so they run once per dataset; the file
records the models' signatures and is rebuilt when they change.
"""

import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _signature(detector, embedder, reader) -> str:
    return f"{detector.signature} {embedder.signature} {reader.signature}"


def build(rbnr: Path, faces_dev: Path, path: Path, threads: int = 2) -> dict:
    """The cached outputs, computed first when ``path`` is missing or from other models."""
    import torch
    from PIL import Image

    from mlpipeline.bibrules import PRODUCT_MIN_CONFIDENCE, BibRules
    from mlpipeline.inference.bib_ocr import BibReader
    from mlpipeline.inference.faces import embed_selfie
    from mlpipeline.inference.mtcnn import FaceDetector
    from mlpipeline.inference.sface import SFaceEmbedder

    torch.set_num_threads(threads)
    detector, embedder, reader = FaceDetector(), SFaceEmbedder(), BibReader()
    signature = _signature(detector, embedder, reader)
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("signature") == signature:
            return saved
    detector.ensure_loaded()
    embedder.ensure_loaded()
    reader.ensure_loaded()

    meta = list(csv.DictReader(open(rbnr / "meta.csv")))
    labels = {row["image"]: row["bibs"].split() for row in csv.DictReader(open(rbnr / "labels.csv"))}
    start_lists: dict[str, set[str]] = {}
    for row in meta:
        start_lists.setdefault(row["set"], set()).update(labels.get(row["image"], ()))

    def readings_of(image, boxes, rules):
        return [{"text": r.text, "confidence": float(r.confidence), "box": list(map(float, r.box)),
                 "alternatives": [[text, float(conf)] for text, conf in r.candidates()]}
                for r in reader.predict(image, boxes, keeps=rules.keeps)]

    photos, started = {}, time.monotonic()
    for number, row in enumerate(meta, 1):
        name = row["image"]
        image = Image.open(rbnr / "images" / name).convert("RGB")
        faces = detector(image)
        vectors = embedder(image, faces) if faces else []
        boxes = [face.box for face in faces]
        listed = BibRules(min_confidence=PRODUCT_MIN_CONFIDENCE,
                          start_list=frozenset(start_lists[row["set"]]))
        unlisted = BibRules(min_confidence=PRODUCT_MIN_CONFIDENCE)
        photos[name] = {
            "set": row["set"], "labels": labels.get(name, []),
            "faces": [{"box": list(map(float, face.box)), "score": float(face.score),
                       "vector": [round(float(v), 6) for v in vector]}
                      for face, vector in zip(faces, vectors)],
            "readings": {"start list": readings_of(image, boxes, listed),
                         "no start list": readings_of(image, boxes, unlisted)},
        }
        print(f"\r{number}/{len(meta)} photos ({time.monotonic() - started:.0f} s)",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    selfies = []
    runners = faces_dev / "rbnr_runners"
    for row in csv.DictReader(open(runners / "manifest.csv")):
        crop = Image.open(runners / row["identity"] / row["face_crop"]).convert("RGB")
        vector = embed_selfie(crop, detector, embedder)
        if vector is None:  # face at the crop's edge: MTCNN needs some margin (bench/faces.py)
            from bench.faces import _pad

            vector = embed_selfie(_pad(crop, 0.5), detector, embedder)
        selfies.append({**row, "vector": None if vector is None
                        else [round(float(v), 6) for v in vector]})
    saved = {"signature": signature, "photos": photos, "selfies": selfies,
             "start_lists": {key: sorted(value) for key, value in start_lists.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved))
    return saved


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
