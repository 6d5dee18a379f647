from django.apps import AppConfig
from django.db.models.signals import pre_save
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Users and privacy")

    def ready(self):
        from accounts.privacy import guard_face_searchable
        from photos.models import Face

        # Whoever saves a Face (pipeline, linking, admin), an opted-out runner's
        # face is never stored as searchable.
        pre_save.connect(guard_face_searchable, sender=Face,
                         dispatch_uid="accounts.guard_face_searchable")
