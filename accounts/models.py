from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A person using RacePhoto. The role decides which staff pages they may open."""

    class Role(models.TextChoices):
        RUNNER = "runner", _("Runner")
        PHOTOGRAPHER = "photographer", _("Photographer")
        ORGANISER = "organiser", _("Organiser")
        ADMIN = "admin", _("Administrator")

    role = models.CharField(_("role"), max_length=20, choices=Role.choices, default=Role.RUNNER)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def save(self, *args, **kwargs):
        # Superusers can do everything; keep the role label honest about it.
        if self.is_superuser:
            self.role = self.Role.ADMIN
        # The role alone decides who may open the Django admin (the staff back
        # office): a runner never, every staff role always, so the two cannot drift.
        self.is_staff = self.role != self.Role.RUNNER
        super().save(*args, **kwargs)

    def has_perm(self, perm, obj=None) -> bool:
        # A platform admin may do everything a superuser may, without the flag.
        if self.is_active and self.role == self.Role.ADMIN:
            return True
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label) -> bool:
        if self.is_active and self.role == self.Role.ADMIN:
            return True
        return super().has_module_perms(app_label)

    @property
    def is_event_staff(self) -> bool:
        """Photographers, organisers and admins: the people who may hold an API token."""
        return self.is_active and (self.role != self.Role.RUNNER or self.is_superuser)

    @property
    def is_photographer(self) -> bool:
        return self.role == self.Role.PHOTOGRAPHER

    @property
    def is_organiser(self) -> bool:
        return self.role == self.Role.ORGANISER

    @property
    def is_platform_admin(self) -> bool:
        return self.role == self.Role.ADMIN or self.is_superuser
