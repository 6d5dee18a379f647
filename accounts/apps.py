from django.apps import AppConfig
from django.db.models.signals import pre_save
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Users and privacy")

    def ready(self):
        from accounts.privacy import guard_erased_bib
        from photos.models import Face

        # The database keeps every other face of an opted-out runner out of search
        # (migration 0003); an erased bib only Python can recognise.
        pre_save.connect(guard_erased_bib, sender=Face, dispatch_uid="accounts.guard_erased_bib")
