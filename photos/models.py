from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from events.models import Event


def _private_storage():
    from django.core.files.storage import storages

    return storages["private"]


class Photo(models.Model):
    """One uploaded photo. The original is private; public pages only see derivatives."""

    class State(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        DERIVATIVES = "derivatives", _("Derivatives made")
        OCR = "ocr", _("Bibs read")
        FACES = "faces", _("Faces found")
        CLIP = "clip", _("Image embedded")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="photos",
                              verbose_name=_("event"))
    photographer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="photos",
                                     verbose_name=_("photographer"))
    original = models.FileField(_("original"), storage=_private_storage, upload_to="originals/")
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    content_hash = models.CharField(_("content hash"), max_length=64)
    state = models.CharField(_("state"), max_length=20, choices=State.choices,
                             default=State.UPLOADED, db_index=True)
    failure_reason = models.TextField(_("failure reason"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event", "content_hash"],
                                    name="unique_photo_content_per_event"),
        ]
        verbose_name = _("photo")
        verbose_name_plural = _("photos")

    def __str__(self):
        return self.original_name or f"photo {self.pk}"
