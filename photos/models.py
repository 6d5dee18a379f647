from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef
from django.dispatch import Signal
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField

from accounts.models import is_platform_admin
from events.models import Event, StartListEntry


# With SEARCH_BACKEND=pgvector, PostgreSQL indexes the vectors itself. The columns
# hold vectors of any size, so each embedding model of mlpipeline's registry
# (mlpipeline.inference.registry.face_vector_dimensions) has a partial HNSW index
# over its own rows cast to its size, created by a migration (photos/migrations/
# _hnsw.py: Django's index expressions cannot place the opclass after a cast); a
# query must use the same cast and filter to be served by it (mlpipeline.indexes).
def pgvector_index_name(prefix: str, signature: str) -> str:
    return f"{prefix}_" + "".join(c if c.isalnum() else "_" for c in signature.lower())[:24]


def _private_storage():
    from django.core.files.storage import storages

    return storages["private"]


class PhotoQuerySet(models.QuerySet):
    def visible_to(self, user) -> "PhotoQuerySet":
        """Photos a staff member may see: admins all, organisers their events' photos,
        photographers only the photos they took (never a colleague's, never a sale of theirs)."""
        if not (user.is_authenticated and user.is_active):
            return self.none()
        if is_platform_admin(user):
            return self.all()
        return self.filter(models.Q(event__in=user.organised_events.values("pk"))
                           | models.Q(photographer=user))

    def state_counts(self) -> dict[str, int]:
        """How many of these photos are in each processing state (every state, zeros too)."""
        counts = dict.fromkeys(Photo.State.values, 0)
        counts.update(self.order_by().values_list("state").annotate(count=models.Count("pk")))
        return counts


class Photo(models.Model):
    """One uploaded photo. The original is private; public pages only see derivatives."""

    class State(models.TextChoices):
        UPLOADED = "uploaded", _("Uploaded")
        DERIVATIVES = "derivatives", _("Derivatives made")
        # Faces come before bibs: the bib reader looks below each face first.
        FACES = "faces", _("Faces found")
        OCR = "ocr", _("Bibs read")
        # After bibs: the printed bib is masked out of the shirt's colour.
        OUTFIT = "outfit", _("Outfit colours read")
        CLIP = "clip", _("Image embedded")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="photos",
                              verbose_name=_("event"))
    photographer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="photos",
                                     verbose_name=_("photographer"))
    original = models.FileField(_("original"), storage=_private_storage, upload_to="originals/",
                                max_length=255)
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    content_hash = models.CharField(_("content hash"), max_length=64)
    file_size = models.PositiveBigIntegerField(_("file size (bytes)"), null=True, blank=True)
    image_format = models.CharField(_("format"), max_length=10, blank=True)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)
    captured_at = models.DateTimeField(_("captured at"), null=True, blank=True, db_index=True)
    camera = models.CharField(_("camera"), max_length=120, blank=True)
    # The web version is a clean, full-quality 1600 px copy: worth buying, so it is
    # private like the original. Only the watermarked preview and thumbnail are public.
    web = models.FileField(_("web version"), storage=_private_storage, upload_to="web/",
                           max_length=255, blank=True)
    preview = models.FileField(_("watermarked preview"), upload_to="previews/", max_length=255,
                               blank=True)
    thumbnail = models.FileField(_("thumbnail"), upload_to="thumbnails/", max_length=255,
                                 blank=True)
    # Picked by the event's organiser for the event page (else the page picks sharp photos
    # with faces itself: events.views.featured_photos).
    featured = models.BooleanField(_("featured on the event page"), default=False)
    sharpness = models.FloatField(_("sharpness"), null=True, blank=True,
                                  help_text=_("Higher is sharper; blurry shots can be ranked lower."))
    # The model signature (name@version) is stored beside the vector so vectors
    # of two models are never compared or indexed together.
    clip_embedding = VectorField(_("image embedding"), null=True, blank=True)
    clip_model = models.CharField(_("image embedding model"), max_length=80, blank=True)
    state = models.CharField(_("state"), max_length=20, choices=State.choices,
                             default=State.UPLOADED, db_index=True)
    failure_reason = models.TextField(_("failure reason"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PhotoQuerySet.as_manager()

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


class PhotoStep(models.Model):
    """One processing step of one photo, recorded so a restart resumes instead of redoing it."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        # The step's model is missing or broken here: the photo goes on without
        # it and the step runs again once the model is back.
        UNAVAILABLE = "unavailable", _("Model unavailable")

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="steps",
                              verbose_name=_("photo"))
    step = models.CharField(_("step"), max_length=20)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["photo", "step"], name="unique_step_per_photo"),
        ]
        verbose_name = _("processing step")
        verbose_name_plural = _("processing steps")

    def __str__(self):
        return f"{self.photo_id}:{self.step} {self.status}"


class DropFolderFile(models.Model):
    """A file seen in an event's drop folder, so a restarted watcher never imports it twice."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="drop_folder_files",
                              verbose_name=_("event"))
    path = models.CharField(_("path in the folder"), max_length=1024)
    size = models.PositiveBigIntegerField(_("size"))
    mtime_ns = models.BigIntegerField(_("modification time (ns)"))
    status = models.CharField(_("result"), max_length=10)  # accepted | duplicate | rejected
    reason = models.TextField(_("reason"), blank=True)
    photo = models.ForeignKey(Photo, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", verbose_name=_("photo"))
    imported_at = models.DateTimeField(_("imported at"), auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "path", "size", "mtime_ns"],
                                    name="unique_drop_folder_file_version"),
        ]
        verbose_name = _("drop-folder file")
        verbose_name_plural = _("drop-folder files")

    def __str__(self):
        return self.path


# Sent with ``event_ids`` after a bulk write of faces (bulk_create, QuerySet.update(),
# bulk_update()) that may have changed which faces are searchable: those send no model
# signals, and the search indexes must follow (mlpipeline.signals).
faces_written = Signal()

# Face columns the privacy rule reads: writing one may change ``searchable``.
PRIVACY_INPUTS = frozenset({"searchable", "bib", "cluster", "event", "event_id"})


class FaceQuerySet(models.QuerySet):
    """Bulk writes of faces say which events they touched.

    Whether a face is searchable is decided by the database on every write
    (accounts migration 0003), these included; what they cannot do on their own
    is tell the ANN indexes, hence ``faces_written``.
    """

    def bulk_create(self, objs, *args, **kwargs):
        objs = super().bulk_create(objs, *args, **kwargs)
        self._written({face.event_id for face in objs})
        return objs

    def update(self, **kwargs):
        # bulk_update() runs through here too, one batch at a time.
        events = (set(self.order_by().values_list("event_id", flat=True).distinct())
                  if PRIVACY_INPUTS & kwargs.keys() else set())
        rows = super().update(**kwargs)
        self._written(events)
        return rows

    def _written(self, event_ids) -> None:
        if event_ids:
            faces_written.send(sender=self.model, event_ids=event_ids)


class Face(models.Model):
    """A face found in a photo, with its embedding; what selfie search compares against."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="faces",
                              verbose_name=_("photo"))
    # Denormalised from the photo: indexes, clustering and privacy all work per event.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="faces",
                              verbose_name=_("event"))
    box = models.JSONField(_("box"), help_text=_("x1, y1, x2, y2 in pixels of the original"))
    score = models.FloatField(_("detection score"))
    embedding = VectorField(_("embedding"), null=True, blank=True)
    model = models.CharField(_("embedding model"), max_length=80, blank=True)
    bib = models.CharField(_("linked bib"), max_length=12, blank=True, db_index=True)
    cluster = models.IntegerField(_("runner cluster"), null=True, blank=True)
    # False while the privacy rule blocks the face (event setting, opt-out, no consent):
    # the face stays out of every index and every face result, whatever index is used.
    # The database enforces it on every write (accounts migration 0003).
    searchable = models.BooleanField(_("searchable"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FaceQuerySet.as_manager()

    class Meta:
        ordering = ["photo", "pk"]
        indexes = [models.Index(fields=["event", "model"], name="face_event_model")]
        verbose_name = _("face")
        verbose_name_plural = _("faces")

    def __str__(self):
        return f"face {self.pk} in photo {self.photo_id}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or PRIVACY_INPUTS & set(update_fields):
            # The database may have said no: keep this object honest about it.
            self.searchable = (Face.objects.filter(pk=self.pk)
                               .values_list("searchable", flat=True).get())


class BibTagQuerySet(models.QuerySet):
    def off_start_list(self) -> "BibTagQuerySet":
        """Readings kept aside because their number is not on the event's start list
        (see ``BibRules.off_list``), for the organiser to review. An event without a
        start list has none: its unconfirmed readings were never checked against one."""
        start_list = StartListEntry.objects.filter(event_id=OuterRef("photo__event_id"))
        return (self.filter(source=BibTag.Source.OCR, confirmed=False)
                .filter(Exists(start_list))
                .exclude(Exists(start_list.filter(bib=OuterRef("bib")))))


class BibTag(models.Model):
    """A bib number on a photo: read by OCR, carried over by face linking, or set by hand."""

    class Source(models.TextChoices):
        OCR = "ocr", _("Read from the photo")
        FACE_LINK = "face-link", _("Same runner's face")
        MANUAL = "manual", _("Tagged by hand")
        # The only runner the timing file puts in front of the photographer then
        # (photos.timing); weaker than a face link, never carried by face.
        TIMING = "timing", _("Passing time")

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="bib_tags",
                              verbose_name=_("photo"))
    bib = models.CharField(_("bib"), max_length=12)
    confidence = models.FloatField(_("confidence"))
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    # On the event's start list (or tagged by hand). Unconfirmed readings are
    # kept for staff but never shown to runners as a confident match.
    confirmed = models.BooleanField(_("confirmed"), default=False)
    # What the reader saw when the bib rules corrected it onto a listed bib one slip away
    # ("3025" tagged 4025): such a tag stays unconfirmed (probable) until a face link,
    # another frame of the burst or a person confirms it (mlpipeline/corrections.py).
    read_as = models.CharField(_("read as"), max_length=12, blank=True, default="")
    box = models.JSONField(_("box"), null=True, blank=True)
    face = models.ForeignKey(Face, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="bib_tags", verbose_name=_("face"))
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BibTagQuerySet.as_manager()

    class Meta:
        ordering = ["photo", "bib"]
        constraints = [
            # One tag per bib per photo; the stronger source wins
            # (manual > ocr > face-link > timing).
            models.UniqueConstraint(fields=["photo", "bib"], name="unique_bib_per_photo"),
        ]
        indexes = [models.Index(fields=["bib", "photo"], name="bibtag_bib_photo")]
        verbose_name = _("bib tag")
        verbose_name_plural = _("bib tags")

    def __str__(self):
        return f"{self.bib} on photo {self.photo_id} ({self.source})"


class RejectedReading(models.Model):
    """A bib a person said is not on this photo: the pipeline never tags it there again
    (re-reading the photo, face linking), until someone adds it back by hand."""

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="rejected_readings",
                              verbose_name=_("photo"))
    bib = models.CharField(_("bib"), max_length=12)
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="+",
                                    verbose_name=_("rejected by"))
    rejected_at = models.DateTimeField(_("rejected at"), auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["photo", "bib"], name="unique_rejection_per_photo"),
        ]
        verbose_name = _("rejected reading")
        verbose_name_plural = _("rejected readings")

    def __str__(self):
        return f"{self.bib} not on photo {self.photo_id}"


class TagChange(models.Model):
    """One change a person made to a photo's tags: who, when, and the tag before and after
    (``None``: no tag), so the change can be undone and a later edit by someone else is
    never overwritten by that undo."""

    class Action(models.TextChoices):
        ADD = "add", _("Added")
        REMOVE = "remove", _("Removed")
        CONFIRM = "confirm", _("Confirmed")
        REJECT = "reject", _("Rejected")
        UNDO = "undo", _("Undone")

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="tag_changes",
                              verbose_name=_("photo"))
    bib = models.CharField(_("bib"), max_length=12)
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             related_name="tag_changes", verbose_name=_("by"))
    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    # One keystroke on many selected photos is one batch: undo takes it back whole.
    batch = models.UUIDField(_("batch"), db_index=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    undone = models.BooleanField(_("undone"), default=False)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("tag change")
        verbose_name_plural = _("tag changes")

    def __str__(self):
        return f"{self.action} {self.bib} on photo {self.photo_id}"


class Outfit(models.Model):
    """The colours one runner wears in one photo (the person of one face): cap, shirt,
    shorts or tights, each named in the palette of
    :mod:`mlpipeline.inference.outfit` with the share of its region's votes."""

    class Colour(models.TextChoices):
        WHITE = "white", _("white")
        BLACK = "black", _("black")
        GREY = "grey", _("grey")
        RED = "red", _("red")
        ORANGE = "orange", _("orange")
        YELLOW = "yellow", _("yellow")
        GREEN = "green", _("green")
        BLUE = "blue", _("blue")
        NAVY = "navy", _("navy")
        PURPLE = "purple", _("purple")
        PINK = "pink", _("pink")
        BROWN = "brown", _("brown")

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="outfits",
                              verbose_name=_("photo"))
    # Denormalised from the photo: outfit search works per event.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="outfits",
                              verbose_name=_("event"))
    face = models.OneToOneField(Face, on_delete=models.CASCADE, related_name="outfit",
                                verbose_name=_("face"))
    # Blank where the region was not seen (off the photo, hidden) or had no clear colour.
    cap = models.CharField(_("cap"), max_length=8, choices=Colour.choices, blank=True)
    cap_confidence = models.FloatField(_("cap confidence"), default=0.0)
    shirt = models.CharField(_("shirt"), max_length=8, choices=Colour.choices, blank=True)
    shirt_confidence = models.FloatField(_("shirt confidence"), default=0.0)
    legs = models.CharField(_("shorts or tights"), max_length=8, choices=Colour.choices,
                            blank=True)
    legs_confidence = models.FloatField(_("shorts or tights confidence"), default=0.0)
    model = models.CharField(_("model"), max_length=80)

    class Meta:
        ordering = ["photo", "pk"]
        indexes = [models.Index(fields=["event", "shirt"], name="outfit_event_shirt"),
                   models.Index(fields=["event", "cap"], name="outfit_event_cap"),
                   models.Index(fields=["event", "legs"], name="outfit_event_legs")]
        verbose_name = _("outfit")
        verbose_name_plural = _("outfits")

    def __str__(self):
        return f"outfit of face {self.face_id}: {self.cap}/{self.shirt}/{self.legs}"


class TagSuggestionQuerySet(models.QuerySet):
    def still_open(self) -> "TagSuggestionQuerySet":
        """Suggestions nobody answered yet: the bib is not on the photo (accepted, read since)
        and was not rejected there (an undone answer opens the suggestion again)."""
        same = {"photo": OuterRef("photo"), "bib": OuterRef("bib")}
        return (self.exclude(Exists(BibTag.objects.filter(**same)))
                .exclude(Exists(RejectedReading.objects.filter(**same))))


class TagSuggestion(models.Model):
    """A bib that may be on a photo, for a person to accept or reject in the review queue:
    a runner the timing file puts in front of the photographer then (``timing``), or the
    bib of a frame of the same burst (``sequence``). Never shown to runners. Recomputed
    from scratch (photos.timing, photos.sequences); a suggestion whose bib is now on the
    photo, or was rejected there, is no longer offered."""

    class Source(models.TextChoices):
        TIMING = "timing", _("Passing time")
        SEQUENCE = "sequence", _("Same burst")

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="suggestions",
                              verbose_name=_("photo"))
    bib = models.CharField(_("bib"), max_length=12)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)
    score = models.FloatField(_("score"), help_text=_("1 is the strongest suggestion."))
    # Seconds between the photo and its evidence: the runner's expected moment (timing),
    # the frame that shows the bib (sequence).
    seconds = models.FloatField(_("seconds apart"))
    # Timing: when the runner passed which point.
    passed_at = models.DateTimeField(_("passed at"), null=True, blank=True)
    point = models.CharField(_("timing point"), max_length=100, blank=True)
    # Sequence: the frame with the bib, and whether a face of this photo is that runner's.
    from_photo = models.ForeignKey(Photo, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="+", verbose_name=_("frame with the bib"))
    same_face = models.BooleanField(_("same face"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TagSuggestionQuerySet.as_manager()

    class Meta:
        ordering = ["photo", "bib"]
        constraints = [
            models.UniqueConstraint(fields=["photo", "bib", "source"],
                                    name="unique_suggestion_per_photo_bib_source"),
        ]
        verbose_name = _("tag suggestion")
        verbose_name_plural = _("tag suggestions")

    def __str__(self):
        return f"{self.bib}? on photo {self.photo_id} ({self.source})"
