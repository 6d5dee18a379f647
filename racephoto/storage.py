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


def delete_files_on_delete(sender, instance, **kwargs) -> None:
    """post_delete receiver: remove a deleted row's stored files once the deletion is
    committed (a rolled-back deletion keeps them). A file that cannot be removed is
    logged, never a failure of the deletion that already happened."""
    stored = [(field.name, getattr(instance, field.attname)) for field in instance._meta.fields
              if isinstance(field, FileField)]
    stored = [(field, value.storage, value.name) for field, value in stored if value]
    if not stored:
        return
    label, pk = sender._meta.label, instance.pk  # Django clears the pk after the signals

    def delete():
        for field, storage, name in stored:
            try:
                storage.delete(name)
            except Exception:
                logger.warning("could not delete the %s file of deleted %s %s", field, label, pk,
                               exc_info=True)

    transaction.on_commit(delete)
