"""Verb functions of the photos app: workflows across models, each safe to run twice."""

import logging
import os
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from photos import tasks
from photos.models import Photo
from photos.validation import RejectedFile, inspected, open_archive

logger = logging.getLogger(__name__)


# --- Ingestion: uploads and ZIP archives become Photo rows ----------------------------


class IngestStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class IngestResult:
    """What happened to one file; ``reason`` is shown to the photographer."""

    name: str
    status: IngestStatus
    photo: Photo | None = None  # the new photo, or the one a duplicate repeats
    reason: str = ""
    code: str = ""  # which rule refused the file (see photos.validation), for logs and code

    @classmethod
    def rejected(cls, name, reason, code="rejected") -> "IngestResult":
        return cls(name, IngestStatus.REJECTED, reason=reason, code=code)

    def as_json(self) -> dict:
        """This result as the upload page's endpoint and the REST API both answer it."""
        return {"name": self.name, "status": self.status.value, "reason": str(self.reason or ""),
                "photo": self.photo.pk if self.photo else None}


def ingest_file(event, fileobj, *, name, photographer=None) -> IngestResult:
    """Validate one uploaded file, keep it as a private original and create its Photo.

    The same content uploaded again to the same event gives a "duplicate" result
    pointing at the photo already there; a bad file gives a "rejected" result,
    never an exception. Processing is enqueued once the new row is committed.
    """
    name = _display_name(name)
    try:
        with inspected(fileobj, name) as (info, content):
            result = _store_photo(event, info, content, name=name, photographer=photographer)
    except RejectedFile as rejection:
        result = IngestResult.rejected(name, rejection.reason, rejection.code)
    _log_result(event, result)
    return result


ZIP_CONTENT_TYPES = {"application/zip", "application/x-zip-compressed", "multipart/x-zip"}


def ingest_upload(event, upload, *, photographer=None) -> list[IngestResult]:
    """One file sent over HTTP (upload page or API): an image, or a ZIP of images."""
    name = upload.name or "upload"
    if name.lower().endswith(".zip") or upload.content_type in ZIP_CONTENT_TYPES:
        results = ingest_zip(event, upload, photographer=photographer)
        if not results:  # only folders and system clutter: say so rather than answer nothing
            results = [IngestResult.rejected(
                name, _("This ZIP archive contains no photo."), "empty_archive")]
        return results
    return [ingest_file(event, upload, name=name, photographer=photographer)]


def ingest_zip(event, fileobj, *, photographer=None, progress=None) -> list[IngestResult]:
    """Ingest every photo of a ZIP (a seekable file object or a path), one result per file.

    Members are read one at a time straight from the archive, never extracted
    to disk. Folders and macOS/Windows clutter are skipped without a result; an
    unusable archive gives a single rejected result. ``progress(done, total)``
    is called once before the first file and after each one.
    """
    with ExitStack() as stack:
        source = fileobj
        if isinstance(fileobj, (str, os.PathLike)):
            source = stack.enter_context(open(fileobj, "rb"))
        try:
            archive = stack.enter_context(open_archive(source))
        except RejectedFile as rejection:
            result = IngestResult.rejected(_archive_name(fileobj), rejection.reason,
                                           rejection.code)
            _log_result(event, result)
            return [result]
        members = archive.members
        results = []
        if progress:
            progress(0, len(members))
        for member in members:
            results.append(_ingest_member(event, archive, member, photographer))
            if progress:
                progress(len(results), len(members))
    logger.info(
        "ZIP ingested into event %s", event.pk,
        extra={"event_id": event.pk, "archive": _archive_name(fileobj),
               **{status.value: sum(r.status == status for r in results)
                  for status in IngestStatus}},
    )
    return results


def enqueue_processing(photo_id: int) -> None:
    """Start the processing (derivatives, faces, bibs, CLIP) of one stored photo."""
    tasks.process_photo.delay(photo_id)


def _store_photo(event, info, content, *, name, photographer) -> IngestResult:
    existing = _existing_photo(event, info.sha256)
    if existing:
        return _duplicate(name, existing)

    storage = Photo._meta.get_field("original").storage
    # Never the uploader's file name: event and content decide where the original lives.
    path = f"originals/{event.pk}/{info.sha256}.{info.extension}"
    width, height = info.upright_size  # Photo has no orientation field: store what viewers see
    stored = None
    try:
        with transaction.atomic():
            try:
                # The row comes first, in a savepoint: a concurrent upload of the same
                # content waits on the unique (event, content_hash) index, gets an
                # IntegrityError once this commits, and never writes a file at all.
                with transaction.atomic():
                    photo = Photo.objects.create(
                        event=event, photographer=photographer, original=path,
                        original_name=name, content_hash=info.sha256, file_size=info.size,
                        image_format=info.format, width=width, height=height,
                        captured_at=info.captured_at, camera=info.camera,
                        state=Photo.State.UPLOADED,
                    )
            except IntegrityError:
                winner = _existing_photo(event, info.sha256)
                if winner is None:
                    raise  # another constraint: not a lost race
                return _duplicate(name, winner)
            stored = storage.save(path, File(content, name=os.path.basename(path)))
            if stored != path:  # a stale file was there: the storage picked a free name
                photo.original.name = stored
                photo.save(update_fields=["original", "updated_at"])
            # robust: a broker outage must not fail an upload that is already stored;
            # the photo stays "uploaded" and can be enqueued again later.
            transaction.on_commit(partial(enqueue_processing, photo.pk), robust=True)
    except BaseException:
        if stored:
            storage.delete(stored)  # the row was rolled back: leave no orphan file
        raise
    return IngestResult(name, IngestStatus.ACCEPTED, photo=photo)


def _existing_photo(event, content_hash) -> Photo | None:
    return Photo.objects.filter(event=event, content_hash=content_hash).first()


def _duplicate(name, existing) -> IngestResult:
    return IngestResult(
        name, IngestStatus.DUPLICATE, photo=existing,
        reason=_("Already uploaded to this event as %(name)s.")
        % {"name": existing.original_name or existing.pk},
    )


def _ingest_member(event, archive, member, photographer) -> IngestResult:
    try:
        with archive.open(member) as reader:
            return ingest_file(event, reader, name=member.filename, photographer=photographer)
    except RejectedFile as rejection:  # refused before any byte was read
        result = IngestResult.rejected(_display_name(member.filename), rejection.reason,
                                       rejection.code)
        _log_result(event, result)
        return result


def _archive_name(fileobj) -> str:
    if isinstance(fileobj, (str, os.PathLike)):
        return _display_name(os.path.basename(os.fspath(fileobj)))
    name = getattr(fileobj, "name", None)
    if isinstance(name, str) and name:
        return _display_name(os.path.basename(name))
    return _("ZIP archive")


def _display_name(name) -> str:
    """The name shown back and kept as original_name: printable, at most 255 characters,
    keeping the end, where the file name is."""
    printable = "".join(char if char.isprintable() else "?" for char in str(name)).strip()
    return printable[-255:]


def _log_result(event, result: IngestResult) -> None:
    logger.info(
        "photo %s: %s", result.status.value, result.name,
        extra={"event_id": event.pk, "file_name": result.name, "status": result.status.value,
               "reason": str(result.reason), "code": result.code,
               "photo_id": result.photo.pk if result.photo else None},
    )
