from django.apps import AppConfig
from django.db.models.signals import post_delete
from django.utils.translation import gettext_lazy as _


class PhotosConfig(AppConfig):
    name = "photos"
    verbose_name = _("Photos")

    def ready(self):
        from photos import recovery  # noqa: F401  (connect its Celery signal handlers)
        from racephoto.storage import delete_files_on_delete

        # A deleted photo (or a deleted event's photos) leaves no original, web copy,
        # preview or thumbnail behind in the storage.
        post_delete.connect(delete_files_on_delete, sender=self.get_model("Photo"),
                            dispatch_uid="photos.photo_files_deleted")
