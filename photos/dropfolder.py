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
import stat
from dataclasses import dataclass
from pathlib import Path
from time import monotonic  # imported by name so tests can set this module's clock alone

from django.db import IntegrityError, transaction

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
                info = path.stat()
            except OSError:
                continue  # vanished between listing and stat
            if not stat.S_ISREG(info.st_mode):
                continue
            found.append(Candidate(path, str(path.relative_to(directory)), info.st_size,
                                   info.st_mtime_ns))
    return found


def _signature(candidate: Candidate) -> tuple[str, int, int]:
    return candidate.relative, candidate.size, candidate.mtime_ns


def _ledger(event) -> set[tuple[str, int, int]]:
    """Every file version already taken for ``event``: one query per scan, not one per file,
    since a watched folder holds a whole event's photos and is scanned every few seconds."""
    return set(DropFolderFile.objects.filter(event=event).values_list("path", "size", "mtime_ns"))


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
    if not results:
        # A ZIP holding only folders or clutter: say so, or the file would vanish silently.
        # Operator-facing like the rest of the command's output: not in the catalogues.
        results = [services.IngestResult.rejected(
            candidate.relative, "The archive holds no photos.", code="empty_archive")]
    accepted = next((r for r in results if r.photo is not None), None)
    statuses = {r.status for r in results}
    status = "accepted" if "accepted" in statuses else ("duplicate" if "duplicate" in statuses
                                                         else "rejected")
    try:
        # A savepoint: when called inside a transaction, a lost race must not break it.
        with transaction.atomic():
            DropFolderFile.objects.create(
                event=event, path=candidate.relative, size=candidate.size,
                mtime_ns=candidate.mtime_ns, status=status,
                photo=accepted.photo if accepted else None,
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
    now = monotonic()
    candidates = scan(directory)
    # Files deleted before they settled would otherwise stay in a long watch's memory.
    present = {candidate.relative for candidate in candidates}
    for relative in [relative for relative in seen if relative not in present]:
        del seen[relative]
    ledger = _ledger(event)
    taken = 0
    for candidate in candidates:
        if _signature(candidate) in ledger:
            continue
        signature = (candidate.size, candidate.mtime_ns)
        first_seen = seen.get(candidate.relative)
        if first_seen is None or first_seen[0] != signature:
            seen[candidate.relative] = (signature, now)
            if settle_seconds > 0:
                continue
        elif now - first_seen[1] < settle_seconds:
            continue
        seen.pop(candidate.relative, None)
        # Checked again just before the work: another watcher may have taken it since the scan.
        if _already_taken(event, candidate):
            continue
        try:
            results = import_candidate(event, candidate, photographer=photographer)
        except OSError as error:
            # Deleted or moved since the scan, unreadable, or storage full: nothing was
            # recorded, so the file is tried again once it is back and settled. One bad
            # file must not stop the others, nor end a watch.
            logger.warning("drop folder: could not import %s: %s", candidate.relative, error)
            results = [services.IngestResult.rejected(
                candidate.relative,
                f"Not imported this time, it will be tried again: {error.strerror or error}",
                code="unreadable")]
        else:
            taken += 1
        if report:
            for result in results:
                report(result)
    return taken
