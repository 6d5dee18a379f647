from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.roles import ORGANISER, ParentScopedInline, RoleScopedAdmin, is_platform_admin
from events.models import Event, Race, StartListEntry
from photos import timing_admin, workspace
from photos.admin import off_start_list_summary

# A start list can hold thousands of runners: editing them all inline would
# render a page nobody can use and exceed DATA_UPLOAD_MAX_NUMBER_FIELDS on save.
START_LIST_INLINE_LIMIT = 50


def _edited_object_id(request):
    """Primary key of the object on an admin change page, None on an add page."""
    object_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
    return unquote(object_id) if object_id else None


class RaceInline(ParentScopedInline, admin.TabularInline):
    model = Race
    extra = 0
    fields = ("name", "distance_km", "start_time")


class StartListFormSet(BaseInlineFormSet):
    def get_queryset(self):
        if not hasattr(self, "_bounded_queryset"):
            self._bounded_queryset = super().get_queryset()[:START_LIST_INLINE_LIMIT]
        return self._bounded_queryset

    def add_fields(self, form, index):
        super().add_fields(form, index)
        # Every row would otherwise query the event's races again for its <select>.
        if "race" in form.fields:
            if not hasattr(self, "_race_choices"):
                self._race_choices = list(form.fields["race"].choices)
            form.fields["race"].choices = self._race_choices


class StartListEntryInline(ParentScopedInline, admin.TabularInline):
    model = StartListEntry
    formset = StartListFormSet
    extra = 0
    fields = ("bib", "first_name", "last_name", "race")
    verbose_name_plural = _(
        "start list (first runners by bib; the full list is under Start list entries)"
    )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "race":
            # Only this event's races make sense; an event being added has none yet.
            event_id = _edited_object_id(request)
            kwargs["queryset"] = (Race.objects.filter(event_id=event_id) if event_id
                                  else Race.objects.none())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class EventAdminForm(forms.ModelForm):
    class Meta:
        model = Event
        fields = "__all__"
        help_texts = {
            "bib_min_length": _("Bibs have at least this many digits."),
            "bib_max_length": _("Bibs have at most this many digits."),
            "bib_min_value": _("Empty: no lower limit."),
            "bib_max_value": _("Empty: no upper limit."),
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 5}),
            "description_en": forms.Textarea(attrs={"rows": 5}),
        }

    # The bib lengths and the time zone have defaults: a form sent without them (a script,
    # an older page) keeps the defaults rather than failing on fields never touched.
    DEFAULTED = ("bib_min_length", "bib_max_length", "time_zone")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.DEFAULTED:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        cleaned = super().clean()
        for name in self.DEFAULTED:
            if name in self.fields and cleaned.get(name) is None and name not in self.errors:
                cleaned[name] = Event._meta.get_field(name).get_default()
        return cleaned


@admin.register(Event)
class EventAdmin(RoleScopedAdmin):
    # Organisers run their own events; deleting one (and all its photos) stays with admins.
    view_roles = change_roles = add_roles = ORGANISER
    list_display = ("name", "date", "location", "is_published", "runner_count")
    list_filter = ("is_published", "date")
    # Explicit: Meta.ordering is dropped once runner_count adds a GROUP BY.
    ordering = ("-date", "name")
    search_fields = ("name", "slug", "location")
    date_hierarchy = "date"
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("organisers", "photographers")
    readonly_fields = ("start_list_summary", "readings_off_start_list")
    form = EventAdminForm
    fieldsets = (
        (None, {"fields": ("name", "name_en", "slug", ("date", "location"), "time_zone", "is_published")}),
        (_("Description"), {"fields": ("description", "description_en")}),
        (_("Bib rules"), {
            "description": _("What a number read on a photo must look like to be taken for a "
                             "bib. Numbers that break a rule are ignored."),
            "fields": (("bib_min_length", "bib_max_length"), ("bib_min_value", "bib_max_value"),
                       "bib_ignore"),
        }),
        (_("Watermark"), {"fields": ("watermark_text", "watermark_logo")}),
        (_("Privacy"), {"fields": ("face_search", "search_engines_may_index")}),
        (_("People"), {"fields": ("organisers", "photographers")}),
        (_("Start list"), {"fields": ("start_list_summary", "readings_off_start_list")}),
    )
    inlines = (RaceInline, StartListEntryInline)

    def scope(self, request, queryset):
        return queryset.filter(pk__in=Event.objects.managed_by(request.user).values("pk"))

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(runner_count=Count("start_list"))

    # The organiser's workspace (photos/workspace.py): each view checks the event is one
    # the person manages, whatever URL they type.
    WORKSPACE = (
        ("start-list/import/", workspace.import_start_list, "import_start_list"),
        ("tagging/", workspace.tagging_grid, "tagging"),
        ("tagging/change/", workspace.change_tags, "change_tags"),
        ("review/", workspace.review_queue, "review"),
        ("review/crop/<int:tag_id>/", workspace.bib_crop, "bib_crop"),
        ("report/", workspace.report, "report"),
        # Timing and bursts (photos/timing_admin.py).
        ("timing/", timing_admin.timing_page, "timing"),
        ("timing/import/", timing_admin.import_timing, "import_timing"),
        ("timing/photographer/<int:photographer_id>/", timing_admin.place_photographer,
         "place_photographer"),
        ("timing/photographer/<int:photographer_id>/clock/", timing_admin.set_clock, "set_clock"),
        ("review/suggestions/", timing_admin.suggestions_queue, "suggestions"),
        ("review/suggestions/decide/", timing_admin.decide_suggestions, "decide_suggestions"),
        ("review/suggestions/recompute/", timing_admin.recompute_suggestions,
         "recompute_suggestions"),
    )

    def get_urls(self):
        extra = [path(f"<int:event_id>/{route}", self.admin_site.admin_view(view),
                      name=f"events_event_{name}") for route, view, name in self.WORKSPACE]
        return [*extra, *super().get_urls()]

    def get_readonly_fields(self, request, obj=None):
        # Who organises an event is the platform's decision, not the organiser's.
        if is_platform_admin(request.user):
            return self.readonly_fields
        return (*self.readonly_fields, "organisers")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # An organiser who creates an event must be able to open it afterwards.
        if not change and not is_platform_admin(request.user):
            form.instance.organisers.add(request.user)

    @admin.display(description=_("runners"), ordering="runner_count")
    def runner_count(self, event):
        return event.runner_count

    @admin.display(description=_("start list"))
    def start_list_summary(self, event):
        if not event.pk:
            return _("Save the event first, then add its start list.")
        url = reverse("admin:events_startlistentry_changelist") + f"?event__id__exact={event.pk}"
        count = event.start_list.count()
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>', url,
            ngettext("%(count)d runner: see and search the full start list",
                     "%(count)d runners: see and search the full start list",
                     count) % {"count": count},
            reverse("admin:events_event_import_start_list", args=[event.pk]),
            _("Import a start list (CSV)"),
        )

    @admin.display(description=_("bibs read, not on the start list"))
    def readings_off_start_list(self, event):
        return off_start_list_summary(event)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        # The user table is mostly runners: offer only people with the matching
        # role, plus whoever is already assigned so saving never drops them.
        User = get_user_model()
        roles = {
            "organisers": (User.Role.ORGANISER, User.Role.ADMIN),
            "photographers": (User.Role.PHOTOGRAPHER, User.Role.ADMIN),
        }.get(db_field.name)
        if roles:
            allowed = Q(role__in=roles)
            event_id = _edited_object_id(request)
            if event_id:
                allowed |= Q(**{f"{db_field.remote_field.related_name}__id": event_id})
            kwargs["queryset"] = User.objects.filter(allowed).distinct().order_by("username")
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(StartListEntry)
class StartListEntryAdmin(RoleScopedAdmin):
    view_roles = change_roles = add_roles = delete_roles = ORGANISER
    list_display = ("bib", "first_name", "last_name", "event", "race")
    # Only events present in the (scoped) list: the plain filter would name every event.
    list_filter = (("event", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("bib", "first_name", "last_name")
    list_select_related = ("event", "race")
    autocomplete_fields = ("event",)
    fields = ("event", "race", "bib", "first_name", "last_name")

    def scope(self, request, queryset):
        return queryset.filter(event__in=Event.objects.managed_by(request.user).values("pk"))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # The choices are also what a submitted form is validated against: an
        # organiser must not be able to post another event's id.
        managed = Event.objects.managed_by(request.user)
        if db_field.name == "race":
            # Race.__str__ names its event: fetch both at once.
            kwargs["queryset"] = Race.objects.filter(event__in=managed).select_related("event")
        elif db_field.name == "event":
            kwargs["queryset"] = managed
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
