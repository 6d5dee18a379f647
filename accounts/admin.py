from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import privacy
from accounts.models import BibClaim, ErasureRecord, User
from events.models import StartListEntry

# A person's role decides what they may open (accounts/roles.py): platform admins may do
# everything, organisers and photographers see their events' rows, runners nothing. Django's
# groups and per-user permissions play no part in it: the sign-in backends ignore their rows
# (accounts/backends.py). So neither is offered: no "Groups" page, no such fields.
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "role", "is_staff", "is_active")
    list_filter = ("role", "is_staff", "is_superuser", "is_active")
    fieldsets = tuple(
        (title, {**options, "fields": tuple(field for field in options["fields"]
                                            if field not in ("groups", "user_permissions"))})
        for title, options in BaseUserAdmin.fieldsets
    ) + ((_("Role"), {"fields": ("role",)}),)
    filter_horizontal = ()
    add_fieldsets = BaseUserAdmin.add_fieldsets + ((_("Role"), {"fields": ("role",)}),)
    # Admin access follows the role (see User.save), so the flag is shown, not edited.
    readonly_fields = ("is_staff",)


@admin.register(BibClaim)
class BibClaimAdmin(admin.ModelAdmin):
    """Platform admins only (Django permissions): claims tie a person to a bib."""

    list_display = ("bib", "event", "user", "face_search", "updated_at")
    list_filter = ("face_search", ("event", admin.RelatedOnlyFieldListFilter))
    search_fields = ("bib", "user__email", "user__username")
    list_select_related = ("event", "user")
    readonly_fields = ("user", "event", "bib", "face_search", "created_at", "updated_at")

    def has_add_permission(self, request):
        return False  # runners claim their own bibs; a claim made for them proves nothing

    def has_change_permission(self, request, obj=None):
        return False  # a choice changes through privacy.set_face_search, which moves the faces


@admin.register(ErasureRecord)
class ErasureRecordAdmin(admin.ModelAdmin):
    list_display = ("requested_at", "status", "event", "user", "bib", "start_list_name",
                    "faces_deleted", "bib_tags_deleted", "completed_at")
    list_filter = ("status",)
    list_select_related = ("event", "user")
    readonly_fields = ("event", "reference", "status", "user", "bib", "start_list_name",
                       "faces_deleted", "bib_tags_deleted", "claims_deleted", "requested_at",
                       "completed_at")
    actions = ["carry_out"]

    @admin.display(description=_("name on the start list"))
    def start_list_name(self, record):
        # What an admin compares with the account's name before erasing.
        if not (record.event_id and record.bib):
            return "–"
        entry = StartListEntry.objects.filter(event_id=record.event_id, bib=record.bib).first()
        return f"{entry.first_name} {entry.last_name}".strip() if entry else "–"

    @admin.action(description=_("Erase the face data of the selected requests"),
                  permissions=["change"])
    def carry_out(self, request, queryset):
        pending = queryset.filter(status=ErasureRecord.Status.REQUESTED)
        count = 0
        for record in pending:
            privacy.erase(record)
            count += 1
        self.message_user(request, ngettext("%(count)d erasure carried out.",
                                            "%(count)d erasures carried out.", count)
                          % {"count": count}, messages.SUCCESS)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail outlives the data it describes
