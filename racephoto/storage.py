"""Where files live when they are not on the local disk: one S3-compatible bucket.

The settings build ``STORAGES`` with :func:`s3_storages` (``STORAGE_BACKEND=s3``), and
the tests build the same dictionary for the S3 server they start, so what they test is
what a deployment runs. One bucket, two prefixes:

- ``public/``: watermarked previews and thumbnails. Public-read objects with plain,
  cacheable URLs (content-named, so cached for a year), fetched by browsers straight
  from the bucket or a CDN in front of it.
- ``private/``: originals and the clean web copies. Private objects; a URL to one is
  signed and expires (``S3_SIGNED_URL_MAX_AGE``), so a paid download can be handed to
  the bucket instead of streaming 15 MB through a web process.
"""

import logging

from django.db import transaction
from django.db.models import FileField
from django.utils.http import content_disposition_header

logger = logging.getLogger(__name__)

S3_BACKEND = "storages.backends.s3.S3Storage"


def s3_storages(*, bucket: str, endpoint_url: str | None = None, region: str | None = None,
                access_key: str | None = None, secret_key: str | None = None,
                custom_domain: str | None = None, object_acls: bool = True,
                signed_url_max_age: int = 600, public_cache_control: str) -> dict:
    """``STORAGES`` for one bucket: public derivatives, private originals, static files."""
    common = {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url or None,
        "region_name": region or None,
        "access_key": access_key or None,
        "secret_key": secret_key or None,
        # Signature v4 everywhere: botocore would sign URLs for us-east-1 with the legacy v2,
        # which newer regions and most S3-compatible servers refuse.
        "signature_version": "s3v4",
        # Never overwrite: a name that exists gets a free one (photos.services relies on it).
        "file_overwrite": False,
    }
    # Buckets with ACLs disabled (AWS's default for new buckets) refuse any ACL header:
    # there a bucket policy makes public/* readable and private objects stay private.
    public_acl, private_acl = ("public-read", "private") if object_acls else (None, None)
    return {
        "default": {
            "BACKEND": S3_BACKEND,
            "OPTIONS": {**common, "location": "public", "default_acl": public_acl,
                        "querystring_auth": False, "custom_domain": custom_domain or None,
                        "object_parameters": {"CacheControl": public_cache_control}},
        },
        "private": {
            "BACKEND": S3_BACKEND,
            "OPTIONS": {**common, "location": "private", "default_acl": private_acl,
                        "querystring_auth": True, "querystring_expire": signed_url_max_age,
                        # An original read by the app (an order's ZIP, the admin's download)
                        # is buffered whole: past this size on disk, not in memory.
                        "max_memory_size": 16 * 1024 * 1024},
        },
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }


def signed_download_url(stored, filename: str) -> str | None:
    """A short-lived URL that makes the browser download ``stored`` as ``filename``, when
    its storage signs URLs (a private S3 object); None when the file must be streamed
    by the app (the file system has no URL for private files)."""
    storage = stored.storage
    if not getattr(storage, "querystring_auth", False):
        return None
    return storage.url(stored.name, parameters={
        "ResponseContentDisposition": content_disposition_header(True, filename),
        # The signed URL is the buyer's: no shared cache may keep the original.
        "ResponseCacheControl": "private, no-store",
    })


def _file_fields(model) -> list[FileField]:
    return [field for field in model._meta.fields if isinstance(field, FileField)]


def _delete_when_committed(files: list[tuple[str, object, str]], what: str, label: str, pk) -> None:
    """Remove ``files`` (field name, storage, stored name) once the current transaction
    commits; none if it rolls back. A file that cannot be removed is logged, never a
    failure of the change that already happened."""
    if not files:
        return

    def delete():
        for field, storage, name in files:
            try:
                storage.delete(name)
            except Exception:
                logger.warning("could not delete the %s file of %s %s %s", field, what, label, pk,
                               exc_info=True)

    transaction.on_commit(delete)


def delete_files_on_delete(sender, instance, **kwargs) -> None:
    """post_delete receiver: remove a deleted row's stored files once the deletion is
    committed (a rolled-back deletion keeps them)."""
    stored = [(field.name, getattr(instance, field.attname)) for field in _file_fields(sender)]
    stored = [(field, value.storage, value.name) for field, value in stored if value]
    # The pk is read now: Django clears it after the signals.
    _delete_when_committed(stored, "deleted", sender._meta.label, instance.pk)


def remember_stored_files(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """pre_save receiver: note the files the row points at in the database before this
    save, for :func:`delete_replaced_files`. One query per save of a row that has files,
    so it is meant for models saved by people (an event), not by the pipeline."""
    if raw or instance._state.adding or instance.pk is None:
        return
    names = [field.attname for field in _file_fields(sender)
             if update_fields is None or field.name in update_fields]
    if names:
        instance._files_before_save = (
            sender._base_manager.filter(pk=instance.pk).values(*names).first() or {})


def delete_replaced_files(sender, instance, raw=False, **kwargs) -> None:
    """post_save receiver: remove the files a saved row no longer points at (replaced by
    a new upload, or cleared) once the save is committed; a rolled-back save keeps them."""
    before = instance.__dict__.pop("_files_before_save", None)
    if not before:
        return
    replaced = []
    for field in _file_fields(sender):
        old_name = before.get(field.attname)
        if old_name and old_name != (getattr(instance, field.attname).name or ""):
            replaced.append((field.name, field.storage, old_name))
    _delete_when_committed(replaced, "saved", sender._meta.label, instance.pk)
