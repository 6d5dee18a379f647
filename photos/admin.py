from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import formats
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.roles import (
    EVENT_STAFF,
    ORGANISER,
    ParentScopedInline,
    RoleScopedAdmin,
    is_platform_admin,
)
from events.models import Event
from photos import pipeline, services
from photos.models import BibTag, DropFolderFile, Photo, PhotoStep


class PhotoStepInline(ParentScopedInline, admin.TabularInline):
    model = PhotoStep
    extra = 0
    can_delete = False
    fields = ("step", "status", "attempts", "started_at", "finished_at", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a record of what happened, never edited


@admin.register(Photo)
class PhotoAdmin(RoleScopedAdmin):
    # Photographers see their own photos; organisers manage every photo of their events.
    view_roles = EVENT_STAFF
    change_roles = delete_roles = ORGANISER
    list_display = ("thumbnail_tag", "original_name", "event", "state", "captured_at",
                    "photographer", "sharpness_score")
    # Only events present in the (scoped) list: the plain filter would name every event.
    list_filter = ("state", ("event", admin.RelatedOnlyFieldListFilter))
    search_fields = ("original_name", "content_hash")
    list_select_related = ("event", "photographer")
    date_hierarchy = "created_at"
    inlines = [PhotoStepInline]
    actions = ["reprocess"]
    # Originals and web versions are private files with no public URL: the page names
    # them and offers the original through original_view, never as a storage link.
    readonly_fields = ("preview_tag", "original_file", "content_hash", "file_size",
                       "image_format", "width", "height", "captured_at", "camera",
                       "sharpness_score", "state", "failure_reason", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("preview_tag", "event", "photographer", "original_name",
                           "original_file", "state", "failure_reason")}),
        (_("Image"), {"fields": (("image_format", "width", "height"), "file_size",
                                 ("captured_at", "camera"), "sharpness_score", "content_hash")}),
        (_("History"), {"fields": (("created_at", "updated_at"),)}),
    )

    def scope(self, request, queryset):
        return queryset & Photo.objects.visible_to(request.user)

    def get_readonly_fields(self, request, obj=None):
        # Moving a photo to another event or crediting it to someone else is an admin's
        # job; the choice lists would also name every event and every user.
        if is_platform_admin(request.user):
            return self.readonly_fields
        return ("event", "photographer", *self.readonly_fields)

    @admin.display(description=_("thumbnail"))
    def thumbnail_tag(self, photo):
        # Only the public, watermarked thumbnail: the admin list must not leak originals either.
        if not photo.thumbnail:
            return "–"
        return format_html('<img src="{}" alt="" class="photo-thumbnail">', photo.thumbnail.url)

    @admin.display(description=_("watermarked preview"))
    def preview_tag(self, photo):
        if not photo.preview:
            return _("Not made yet: it appears once the photo is processed.")
        return format_html('<a href="{0}"><img src="{0}" alt="{1}" class="photo-preview"></a>',
                           photo.preview.url, _("watermarked preview"))

    @admin.display(description=_("original"))
    def original_file(self, photo):
        if not photo.original:
            return "–"
        url = reverse("admin:photos_photo_original", args=[photo.pk])
        return format_html('<a href="{}">{}</a> <span class="help">{}</span>', url,
                           _("Download the original"),
                           _("Private: only staff of the event can download it."))

    @admin.display(description=_("sharpness"), ordering="sharpness")
    def sharpness_score(self, photo):
        # A variance of the Laplacian: only its order of magnitude means anything.
        if photo.sharpness is None:
            return "–"
        return formats.number_format(round(photo.sharpness))

    def get_urls(self):
        original = path("<int:object_id>/original/",
                        self.admin_site.admin_view(self.original_view),
                        name="photos_photo_original")
        return [original, *super().get_urls()]

    def original_view(self, request, object_id):
        """Streams the private original to staff who may see the photo (scoped queryset)."""
        photo = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, photo):
            raise PermissionDenied
        if not photo.original:
            raise Http404
        try:
            handle = photo.original.open("rb")
        except FileNotFoundError as missing:
            raise Http404(_("The original file is missing from storage.")) from missing
        return FileResponse(handle, as_attachment=True,
                            filename=photo.original_name or photo.original.name.rsplit("/", 1)[-1])

    @admin.action(description=_("Process again (failed photos are reset first)"),
                  permissions=["change"])
    def reprocess(self, request, queryset):
        count = 0
        for photo_id, state in queryset.values_list("pk", "state"):
            if state == Photo.State.FAILED:
                pipeline.reset_failed(photo_id)
            services.enqueue_processing(photo_id)
            count += 1
        self.message_user(request, ngettext("%(count)d photo queued.", "%(count)d photos queued.",
                                            count) % {"count": count}, messages.SUCCESS)


@admin.register(DropFolderFile)
class DropFolderFileAdmin(RoleScopedAdmin):
    view_roles = ORGANISER
    list_display = ("path", "event", "status", "reason", "imported_at")
    list_filter = ("status", ("event", admin.RelatedOnlyFieldListFilter))
    search_fields = ("path",)
    readonly_fields = ("event", "path", "size", "mtime_ns", "status", "reason", "photo",
                       "imported_at")

    def scope(self, request, queryset):
        return queryset.filter(event__in=Event.objects.managed_by(request.user).values("pk"))

    def has_add_permission(self, request):
        return False


class StartListFilter(admin.SimpleListFilter):
    title = _("start list")
    parameter_name = "start_list"
    OFF = "off"

    def lookups(self, request, model_admin):
        return ((self.OFF, _("Read, not on the start list")),)

    def queryset(self, request, queryset):
        if self.value() == self.OFF:
            return queryset.off_start_list()
        return queryset


def off_start_list_url(event) -> str:
    """The review list of the event's readings that are not on its start list."""
    return (reverse("admin:photos_bibtag_changelist")
            + f"?photo__event__id__exact={event.pk}&{StartListFilter.parameter_name}="
            + StartListFilter.OFF)


@admin.register(BibTag)
class BibTagAdmin(RoleScopedAdmin):
    """Bib tags as the pipeline left them; organisers review the readings kept aside
    (numbers not on the start list) and delete the ones that are noise."""
    view_roles = delete_roles = ORGANISER
    list_display = ("thumbnail_tag", "bib", "source", "confirmed", "confidence_shown",
                    "photo_link", "event_name")
    list_filter = (StartListFilter, "source", "confirmed",
                   ("photo__event", admin.RelatedOnlyFieldListFilter))
    search_fields = ("bib",)
    list_select_related = ("photo", "photo__event")
    fields = ("thumbnail_tag", "photo_link", "bib", "source", "confirmed", "confidence", "box",
              "face", "created_at")
    readonly_fields = fields

    def scope(self, request, queryset):
        return queryset.filter(photo__event__in=Event.objects.managed_by(request.user).values("pk"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # what the reader saw; a wrong tag is deleted, never edited

    @admin.display(description=_("thumbnail"))
    def thumbnail_tag(self, tag):
        return PhotoAdmin.thumbnail_tag(self, tag.photo)

    @admin.display(description=_("confidence"), ordering="confidence")
    def confidence_shown(self, tag):
        return f"{tag.confidence:.2f}"

    @admin.display(description=_("photo"), ordering="photo")
    def photo_link(self, tag):
        url = reverse("admin:photos_photo_change", args=[tag.photo_id])
        return format_html('<a href="{}">{}</a>', url, tag.photo)

    @admin.display(description=_("event"), ordering="photo__event__name")
    def event_name(self, tag):
        return tag.photo.event.name


def off_start_list_summary(event):
    """"N readings not on the start list", linked to their review list (event admin page)."""
    if not event.pk:
        return "–"
    if not event.start_list.exists():
        return _("No start list: bibs read are not checked against one.")
    count = BibTag.objects.filter(photo__event=event).off_start_list().count()
    if not count:
        return _("None: every bib read is on the start list.")
    return format_html('<a href="{}">{}</a>', off_start_list_url(event), ngettext(
        "%(count)d bib reading not on the start list: review it",
        "%(count)d bib readings not on the start list: review them", count) % {"count": count})
