import os
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from accounts.models import is_platform_admin
from events import branding
from events.branding import HEX_COLOUR

#: an event's logo or watermark logo: a picture, not a poster
LOGO_MAX_BYTES = 2 * 1024 * 1024


def private_storage():
    # The storage originals are kept in: never mounted where anything serves files.
    from django.core.files.storage import storages

    return storages["private"]


def _unique_name(folder: str, filename: str) -> str:
    # A replaced logo's file is deleted, so the storage could hand its name to the next
    # upload; the logo's URL (?v=) and the watermark's cache are keyed by the name, so
    # every upload gets a name of its own.
    stem, extension = os.path.splitext(os.path.basename(filename))
    return f"{folder}/{stem[:60]}-{secrets.token_hex(6)}{extension.lower()}"


def logo_upload_to(instance, filename: str) -> str:
    return _unique_name("logos", filename)


def watermark_logo_upload_to(instance, filename: str) -> str:
    return _unique_name("watermarks", filename)


def validate_logo_size(file) -> None:
    if file and file.size > LOGO_MAX_BYTES:
        raise ValidationError(_("The logo is larger than %(size)d MB: export it smaller.")
                              % {"size": LOGO_MAX_BYTES // (1024 * 1024)})


def _active(user) -> bool:
    return user.is_authenticated and user.is_active


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(_("“%(zone)s” is not a time zone, e.g. Europe/Paris.")
                              % {"zone": value}) from exc


class EventQuerySet(models.QuerySet):
    def managed_by(self, user) -> "EventQuerySet":
        """Events ``user`` manages (the same rule as Event.can_manage, for lists)."""
        if not _active(user):
            return self.none()
        if is_platform_admin(user):
            return self.all()
        return self.filter(pk__in=user.organised_events.values("pk"))

    def staffed_by(self, user) -> "EventQuerySet":
        """Events ``user`` may upload to (the same rule as Event.can_upload, for lists)."""
        if not _active(user):
            return self.none()
        if is_platform_admin(user):
            return self.all()
        return self.filter(pk__in=user.organised_events.values("pk")) | self.filter(
            pk__in=user.photographed_events.values("pk"))

    def by_slug_or_id(self, key: str) -> "Event | None":
        """The event a command-line argument names: its slug, or its id."""
        event = self.filter(slug=key).first()
        if event is None and key.isdigit():
            event = self.filter(pk=int(key)).first()
        return event


class Organisation(models.Model):
    """Who puts races on (a club, an association, a company): its public page lists its
    events. The people who run an event in the back office are ``Event.organisers``."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    description = models.TextField(_("description (French)"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True,
                                      help_text=_("Empty: the French description is shown."))
    website = models.URLField(_("website"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organiser")
        verbose_name_plural = _("organisers")

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("events:organisation", kwargs={"slug": self.slug})

    @property
    def display_description(self) -> str:
        if (translation.get_language() or "").startswith("en"):
            return self.description_en or self.description
        return self.description or self.description_en


class Event(models.Model):
    """A race day: the unit that photos, start lists, indexes and prices belong to."""

    class FaceSearch(models.TextChoices):
        ON = "on", _("On: every runner's face can be found, unless they opt out")
        OPT_IN = "opt_in", _("Opt-in: only runners who agreed can be found by their face")
        OFF = "off", _("Off: no selfie search, faces are never compared")

    # Texts come in the site's main language (French) and, optionally, in English;
    # a page shows the reader's language and falls back to the other one.
    name = models.CharField(_("name (French)"), max_length=200)
    name_en = models.CharField(_("name (English)"), max_length=200, blank=True,
                               help_text=_("Empty: the French name is shown."))
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    date = models.DateField(_("date"))
    location = models.CharField(_("location"), max_length=200, blank=True)
    # Times written without a zone (a camera's clock, a timing export) are this zone's.
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Paris", validators=[validate_time_zone],
        help_text=_("Where the race is run, e.g. Europe/Paris: timing results written without "
                    "a time zone are read in it."))
    description = models.TextField(_("description (French)"), blank=True)
    description_en = models.TextField(
        _("description (English)"), blank=True,
        help_text=_("Empty: the French description is shown."))
    is_published = models.BooleanField(
        _("published"), default=False,
        help_text=_("Only published events appear on the public site."),
    )
    watermark_text = models.CharField(
        _("watermark text"), max_length=80, blank=True,
        help_text=_("Printed across public previews. Empty: the event name."),
    )
    # In the private storage, like the originals: the logo is only ever seen printed over
    # a preview, and the raw file would help anyone scrubbing the watermark off.
    watermark_logo = models.ImageField(
        _("watermark logo"), upload_to=watermark_logo_upload_to, blank=True, storage=private_storage,
        validators=[validate_logo_size],
        help_text=_("Optional PNG with transparency, tiled over public previews."),
    )
    # Branding of the event's public pages.
    logo = models.ImageField(
        _("logo"), upload_to=logo_upload_to, blank=True, storage=private_storage,
        validators=[validate_logo_size],
        help_text=_("Shown at the top of the event page (PNG, JPEG or WebP, at most 2 MB)."),
    )
    accent_colour = models.CharField(
        _("accent colour"), max_length=7, blank=True,
        validators=[RegexValidator(HEX_COLOUR, _("A colour as #rrggbb, e.g. #0a7d3b."))],
        help_text=_("Links, buttons and the band at the top of the event's pages, e.g. "
                    "#0a7d3b. A colour too light to read on white is darkened for text. "
                    "Empty: the site's colour."),
    )
    # Bib rules: what a number read on a photo must look like to count as a bib.
    bib_min_length = models.PositiveSmallIntegerField(_("shortest bib (digits)"), default=1)
    bib_max_length = models.PositiveSmallIntegerField(_("longest bib (digits)"), default=5)
    bib_min_value = models.PositiveIntegerField(_("smallest bib number"), null=True, blank=True)
    bib_max_value = models.PositiveIntegerField(_("largest bib number"), null=True, blank=True)
    bib_ignore = models.CharField(
        _("numbers that are never bibs"), max_length=200, blank=True,
        help_text=_("Comma-separated, e.g. the year or the distance printed on every bib: "
                    "2026, 10, 21."),
    )
    # Face embeddings are biometric data (GDPR art. 9): opt-in is the default, and
    # an organiser who turns search on must tell runners (the public page does).
    face_search = models.CharField(
        _("face search"), max_length=10, choices=FaceSearch.choices, default=FaceSearch.OPT_IN,
        help_text=_("Whether runners can find their photos with a selfie. Changing it takes "
                    "effect at once for every face of the event."),
    )
    face_search_policy = models.TextField(
        _("face-search policy for runners (French)"), blank=True,
        help_text=_("Shown to runners beside the site's explanation of face search: who "
                    "runs the event's photos, how long faces are kept, whom to write to."),
    )
    face_search_policy_en = models.TextField(
        _("face-search policy for runners (English)"), blank=True,
        help_text=_("Empty: the French text is shown."))
    # Some races (children's races, private events) want their runners' photos shared by
    # link but kept out of search engines: their pages say noindex and leave the sitemap.
    search_engines_may_index = models.BooleanField(
        _("search engines may index"), default=True,
        help_text=_("Off: the event page and its photo pages ask search engines not to list "
                    "them, and are left out of the sitemap. Anyone with the link still sees "
                    "them."),
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.SET_NULL, null=True, blank=True, related_name="events",
        verbose_name=_("organised by"),
        help_text=_("The club or company named on the event page, with a link to its other "
                    "events."),
    )
    organisers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="organised_events",
        verbose_name=_("organisers"),
    )
    photographers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="photographed_events",
        verbose_name=_("photographers"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-date", "name"]
        verbose_name = _("event")
        verbose_name_plural = _("events")

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("events:detail", kwargs={"slug": self.slug})

    def _in_current_language(self, field: str) -> str:
        french, english = getattr(self, field), getattr(self, f"{field}_en")
        if (translation.get_language() or "").startswith("en"):
            return english or french
        return french or english

    @property
    def display_name(self) -> str:
        """The name in the language of the page being rendered, else the other one."""
        return self._in_current_language("name")

    @property
    def display_face_search_policy(self) -> str:
        return self._in_current_language("face_search_policy")

    @property
    def palette(self):
        """The accent colours of the event's pages, readable on white; None: the site's."""
        return branding.palette(self.accent_colour) if self.accent_colour else None

    @property
    def display_description(self) -> str:
        """The description in the language of the page being rendered, else the other one."""
        return self._in_current_language("description")

    def clean(self):
        super().clean()
        if self.bib_min_length > self.bib_max_length:
            raise ValidationError({"bib_max_length": _("The longest bib cannot be shorter than "
                                                       "the shortest.")})
        if (self.bib_min_value is not None and self.bib_max_value is not None
                and self.bib_min_value > self.bib_max_value):
            raise ValidationError({"bib_max_value": _("The largest bib number cannot be below "
                                                      "the smallest.")})
        bad = [part for part in self.ignored_bibs_raw() if not part.isdigit()]
        if bad:
            raise ValidationError({"bib_ignore": _("Only numbers, separated by commas: %(bad)s")
                                   % {"bad": ", ".join(bad)}})

    def ignored_bibs_raw(self) -> list[str]:
        return [part.strip() for part in self.bib_ignore.replace(";", ",").split(",")
                if part.strip()]

    def can_upload(self, user) -> bool:
        """Photographers assigned to the event, its organisers and admins may add photos."""
        if not _active(user):
            return False
        return (is_platform_admin(user) or self.photographers.filter(pk=user.pk).exists()
                or self.organisers.filter(pk=user.pk).exists())

    def can_manage(self, user) -> bool:
        """Organisers of the event and admins manage processing (retries, tagging, prices)."""
        if not _active(user):
            return False
        return is_platform_admin(user) or self.organisers.filter(pk=user.pk).exists()


class Race(models.Model):
    """One distance run at an event (10 km, semi-marathon...)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="races",
                              verbose_name=_("event"))
    name = models.CharField(_("name"), max_length=100)
    distance_km = models.DecimalField(_("distance (km)"), max_digits=6, decimal_places=2,
                                      null=True, blank=True)
    start_time = models.TimeField(_("start time"), null=True, blank=True)

    class Meta:
        ordering = ["event", "distance_km", "name"]
        constraints = [
            models.UniqueConstraint(fields=["event", "name"], name="unique_race_name_per_event"),
        ]
        verbose_name = _("race")
        verbose_name_plural = _("races")

    def __str__(self):
        return f"{self.event} – {self.name}"


class StartListEntry(models.Model):
    """Who wears which bib: lets OCR reject numbers nobody wears and names runners."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="start_list",
                              verbose_name=_("event"))
    race = models.ForeignKey(Race, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="entries", verbose_name=_("race"))
    bib = models.CharField(_("bib"), max_length=12)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    # Optional, from the organiser's registration export; never shown on public pages.
    email = models.EmailField(_("e-mail"), blank=True)

    class Meta:
        ordering = ["event", "bib"]
        constraints = [
            models.UniqueConstraint(fields=["event", "bib"], name="unique_bib_per_event"),
        ]
        verbose_name = _("start list entry")
        verbose_name_plural = _("start list entries")

    def __str__(self):
        return f"{self.bib} {self.first_name} {self.last_name}".strip()


class TimingPoint(models.Model):
    """A mat where the timing system records each runner passing (the finish, a split)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="timing_points",
                              verbose_name=_("event"))
    name = models.CharField(_("name"), max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "name"]
        constraints = [
            models.UniqueConstraint(fields=["event", "name"], name="unique_timing_point_per_event"),
        ]
        verbose_name = _("timing point")
        verbose_name_plural = _("timing points")

    def __str__(self):
        return self.name


class TimingResult(models.Model):
    """When one runner passed one timing point, as an absolute instant (UTC in the database)."""

    point = models.ForeignKey(TimingPoint, on_delete=models.CASCADE, related_name="results",
                              verbose_name=_("timing point"))
    bib = models.CharField(_("bib"), max_length=12)
    passed_at = models.DateTimeField(_("passed at"))

    class Meta:
        ordering = ["point", "passed_at"]
        constraints = [
            models.UniqueConstraint(fields=["point", "bib"], name="unique_bib_per_timing_point"),
        ]
        indexes = [models.Index(fields=["point", "passed_at"], name="timing_point_passed_at")]
        verbose_name = _("timing result")
        verbose_name_plural = _("timing results")

    def __str__(self):
        return f"{self.bib} at {self.point} {self.passed_at:%H:%M:%S}"


class PhotographerTiming(models.Model):
    """Where a photographer stood, in seconds from a timing point, and how wrong their
    camera's clock was: a photo taken at ``captured_at + clock_offset`` shows the runners
    who passed ``point`` about ``position`` seconds earlier (negative: before the mat)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="photographer_timings",
                              verbose_name=_("event"))
    photographer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                     related_name="+", verbose_name=_("photographer"))
    point = models.ForeignKey(TimingPoint, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="photographers", verbose_name=_("timing point"))
    position_seconds = models.FloatField(
        _("position (seconds from the point)"), default=0.0,
        help_text=_("Negative: runners reach the photographer before the mat (e.g. −20 for "
                    "100 m before the finish); positive: after it."))
    window_seconds = models.FloatField(
        _("window (± seconds)"), default=5.0,
        help_text=_("How far from the expected moment a photo still shows the runner: wider "
                    "the further the photographer stands from the mat."))
    clock_offset_seconds = models.FloatField(
        _("camera clock offset (seconds)"), default=0.0,
        help_text=_("Added to every capture time of this photographer's photos."))
    # "IMG_0412.JPG is bib 1234": how the offset was found, shown beside it.
    clock_reference = models.CharField(_("clock set from"), max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event", "photographer"]
        constraints = [
            models.UniqueConstraint(fields=["event", "photographer"],
                                    name="unique_timing_per_photographer"),
            models.CheckConstraint(condition=models.Q(window_seconds__gt=0),
                                   name="photographer_timing_window_positive"),
        ]
        verbose_name = _("photographer's position")
        verbose_name_plural = _("photographers' positions")

    def __str__(self):
        return f"{self.photographer} at {self.point} {self.position_seconds:+g} s"
