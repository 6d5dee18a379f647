"""Drop-folder (FTP-style) ingestion: import every image or ZIP under a directory.

A file counts as completely written once its size and modification time have
not changed for ``settle_seconds`` (FTP servers and rsync write in place; a
half-written JPEG must not be imported as a corrupt photo). Every file taken
is recorded in ``DropFolderFile`` with its size and mtime, so a restarted
watcher skips what it already did, and a file replaced by a new version is
taken again.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import IntegrityError

from photos import services
from photos.models import DropFolderFile

logger = logging.getLogger(__name__)

# Names upload tools use while a transfer is in progress.
IN_PROGRESS_SUFFIXES = {".part", ".partial", ".tmp", ".crdownload", ".filepart"}


@dataclass(frozen=True)
class Candidate:
    path: Path
    relative: str
    size: int
    mtime_ns: int


def scan(directory: Path) -> list[Candidate]:
    """Files under ``directory`` that look importable, in a stable order."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            suffix = path.suffix.lower()
            if name.startswith(".") or suffix in IN_PROGRESS_SUFFIXES:
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished between listing and stat
            if not path.is_file():
                continue
            found.append(Candidate(path, str(path.relative_to(directory)), stat.st_size,
                                   stat.st_mtime_ns))
    return found


def _already_taken(event, candidate: Candidate) -> bool:
    return DropFolderFile.objects.filter(event=event, path=candidate.relative, size=candidate.size,
                                         mtime_ns=candidate.mtime_ns).exists()


def import_candidate(event, candidate: Candidate, *, photographer=None) -> list[services.IngestResult]:
    # Everything else goes through the same checks as a browser upload, so a GIF
    # or a stray text file gets the same clear reason there as here.
    with candidate.path.open("rb") as handle:
        if candidate.path.suffix.lower() == ".zip":
            results = services.ingest_zip(event, handle, photographer=photographer)
        else:
            results = [services.ingest_file(event, handle, name=candidate.relative,
                                            photographer=photographer)]
    accepted = next((r for r in results if r.photo is not None), None)
    statuses = {r.status for r in results}
    status = "accepted" if "accepted" in statuses else ("duplicate" if "duplicate" in statuses
                                                         else "rejected")
    try:
        DropFolderFile.objects.create(
            event=event, path=candidate.relative, size=candidate.size, mtime_ns=candidate.mtime_ns,
            status=status, photo=accepted.photo if accepted else None,
            reason="; ".join(f"{r.name}: {r.reason}" for r in results if r.reason)[:5000],
        )
    except IntegrityError:
        pass  # another watcher took it at the same moment; the content hash kept one photo
    return results


def import_once(event, directory: Path, *, photographer=None, settle_seconds: float = 0,
                seen: dict | None = None, report=None) -> int:
    """Import what is new and settled in ``directory``; returns how many files were taken.

    ``seen`` carries sizes/mtimes between calls of a watch loop: a file is
    settled when it looked the same ``settle_seconds`` ago.
    """
    seen = {} if seen is None else seen
    now = time.monotonic()
    taken = 0
    for candidate in scan(directory):
        if _already_taken(event, candidate):
            continue
        signature = (candidate.size, candidate.mtime_ns)
        first_seen = seen.get(candidate.relative)
        if first_seen is None or first_seen[0] != signature:
            seen[candidate.relative] = (signature, now)
            if settle_seconds > 0:
                continue
        elif now - first_seen[1] < settle_seconds:
            continue
        results = import_candidate(event, candidate, photographer=photographer)
        seen.pop(candidate.relative, None)
        taken += 1
        if report:
            for result in results:
                report(result)
    return taken
