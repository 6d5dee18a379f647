from django.conf import settings
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
        if is_platform_admin(self):
            return True
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label) -> bool:
        if is_platform_admin(self):
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
        return is_platform_admin(self)


def is_platform_admin(user) -> bool:
    """Whether ``user`` (signed in or not) may see and do everything: an active superuser or
    an active user with the admin role. The one definition; every check asks it."""
    return bool(getattr(user, "is_active", False)
                and (user.is_superuser or getattr(user, "role", None) == User.Role.ADMIN))


class BibClaim(models.Model):
    """A signed-in runner says "bib N at event E is me", and chooses about face search.

    Several people may claim the same bib (a claim proves nothing on its own):
    whoever opted out wins over whoever consented, so a wrong claim can hide
    a runner's face from search but never expose it.
    """

    class FaceSearch(models.TextChoices):
        UNDECIDED = "undecided", _("Not decided")
        CONSENTED = "consented", _("Agreed to be found by face")
        OPTED_OUT = "opted_out", _("Opted out of face search")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="bib_claims", verbose_name=_("runner"))
    event = models.ForeignKey("events.Event", on_delete=models.CASCADE, related_name="bib_claims",
                              verbose_name=_("event"))
    bib = models.CharField(_("bib"), max_length=12)
    face_search = models.CharField(_("face search"), max_length=10, choices=FaceSearch.choices,
                                   default=FaceSearch.UNDECIDED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event", "bib"]
        constraints = [
            models.UniqueConstraint(fields=["user", "event", "bib"], name="unique_claim_per_runner"),
        ]
        indexes = [models.Index(fields=["event", "bib"], name="bibclaim_event_bib")]
        verbose_name = _("bib claim")
        verbose_name_plural = _("bib claims")

    def __str__(self):
        return f"{self.bib} @ {self.event_id}"


class ErasureRecord(models.Model):
    """A runner's request to erase their face data, then the audit trail of its erasure.

    While it waits for an admin, it names the runner and the bib; once carried
    out, both are cleared and only what an audit needs is kept: the event, the
    counts, the dates and a keyed hash of (event, bib). The hash lets the
    pipeline recognise the bib again (its new faces stay out of search) without
    the record holding the bib itself.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        DONE = "done", _("Erased")

    event = models.ForeignKey("events.Event", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="erasure_records", verbose_name=_("event"))
    reference = models.CharField(_("reference"), max_length=64, db_index=True,
                                 help_text=_("Keyed hash of the event and bib; not reversible "
                                             "without the server's secret key."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices,
                              default=Status.REQUESTED)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="+", verbose_name=_("runner"))
    bib = models.CharField(_("bib"), max_length=12, blank=True)
    faces_deleted = models.PositiveIntegerField(_("faces deleted"), default=0)
    bib_tags_deleted = models.PositiveIntegerField(_("bib tags deleted"), default=0)
    claims_deleted = models.PositiveIntegerField(_("claims deleted"), default=0)
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    completed_at = models.DateTimeField(_("erased at"), null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        verbose_name = _("erasure record")
        verbose_name_plural = _("erasure records")

    def __str__(self):
        return f"{self.get_status_display()} {self.reference[:12]}"
