from django.contrib import admin, messages
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
from photos.models import DropFolderFile, Photo, PhotoStep


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
                    "photographer", "sharpness")
    # Only events present in the (scoped) list: the plain filter would name every event.
    list_filter = ("state", ("event", admin.RelatedOnlyFieldListFilter))
    search_fields = ("original_name", "content_hash")
    list_select_related = ("event", "photographer")
    date_hierarchy = "created_at"
    inlines = [PhotoStepInline]
    actions = ["reprocess"]
    readonly_fields = ("thumbnail_tag", "content_hash", "file_size", "image_format", "width",
                       "height", "captured_at", "camera", "original", "web", "preview",
                       "thumbnail", "sharpness", "state", "failure_reason", "created_at",
                       "updated_at")
    fields = ("event", "photographer", "original_name", *readonly_fields)

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
        return format_html('<img src="{}" alt="" style="max-height:64px">', photo.thumbnail.url)

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
