from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import Http404
from django.urls import path, reverse
from django.utils import formats
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.roles import ORGANISER, ParentScopedInline, RoleScopedAdmin, is_platform_admin
from events import branding
from events.models import Event, Organisation, Race, StartListEntry
from events.views import logo_response
from photos import timing_admin, workspace
from photos.admin import off_start_list_summary

# A start list can hold thousands of runners: editing them all inline would
# render a page nobody can use and exceed DATA_UPLOAD_MAX_NUMBER_FIELDS on save.
START_LIST_INLINE_LIMIT = 50
# The accent preview's swatches (inline: the admin's stylesheet is Django's).
SWATCH = ("display:inline-block;padding:.35rem .75rem;margin:0 .5rem .25rem 0;"
          "border-radius:.25rem;font-weight:600;")


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


class _LinkedFile:
    """A stored file as ClearableFileInput shows it, with a link that works for files of the
    private storage (which no URL serves)."""

    def __init__(self, file, url):
        self.file, self.url = file, url

    def __str__(self):
        return self.file.name.rsplit("/", 1)[-1]

    def __bool__(self):
        return bool(self.file)


class PrivateImageInput(forms.ClearableFileInput):
    def __init__(self, url="", attrs=None):
        super().__init__(attrs={"accept": "image/png,image/jpeg,image/webp", **(attrs or {})})
        self.url = url

    def is_initial(self, value):
        return bool(value and getattr(value, "name", ""))

    def format_value(self, value):
        if self.is_initial(value):
            return _LinkedFile(value, self.url)
        return None


def private_logo(request, event_id, kind):
    """An event's logo or watermark logo, for the people who manage the event."""
    event = workspace.managed_event(request, event_id)
    if kind not in ("logo", "watermark_logo"):
        raise Http404
    return logo_response(getattr(event, kind), "private, max-age=300")


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
            "face_search_policy": forms.Textarea(attrs={"rows": 4}),
            "face_search_policy_en": forms.Textarea(attrs={"rows": 4}),
            "accent_colour": forms.TextInput(attrs={"placeholder": "#0a7d3b", "size": 8,
                                                    "spellcheck": "false"}),
        }

    # The bib lengths and the time zone have defaults: a form sent without them (a script,
    # an older page) keeps the defaults rather than failing on fields never touched.
    DEFAULTED = ("bib_min_length", "bib_max_length", "time_zone")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.DEFAULTED:
            if name in self.fields:
                self.fields[name].required = False
        for name in ("logo", "watermark_logo"):
            if name in self.fields:
                url = (reverse("admin:events_event_logo", args=[self.instance.pk, name])
                       if self.instance.pk else "")
                self.fields[name].widget = PrivateImageInput(url)

    def clean_accent_colour(self):
        return self.cleaned_data.get("accent_colour", "").strip().lower()

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
    readonly_fields = ("start_list_summary", "readings_off_start_list", "accent_preview",
                       "featured_summary")
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
        (_("Branding"), {
            "description": _("How the event's public pages look."),
            "fields": ("logo", "accent_colour", "accent_preview"),
        }),
        (_("Watermark"), {
            "description": _("Printed over every public preview when a photo is processed. "
                             "Photos already processed keep their watermark until they are "
                             "processed again (manage.py process_event EVENT --redo "
                             "derivatives)."),
            "fields": ("watermark_text", "watermark_logo"),
        }),
        (_("Face search"), {"fields": ("face_search", "face_search_policy",
                                       "face_search_policy_en")}),
        (_("Featured photos"), {"fields": ("featured_summary",)}),
        (_("Search engines"), {"fields": ("search_engines_may_index",)}),
        (_("People"), {"fields": ("organisation", "organisers", "photographers")}),
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
        ("logo/<str:kind>/", private_logo, "logo"),
    )

    def get_urls(self):
        extra = [path(f"<int:event_id>/{route}", self.admin_site.admin_view(view),
                      name=f"events_event_{name}") for route, view, name in self.WORKSPACE]
        return [*extra, *super().get_urls()]

    def get_readonly_fields(self, request, obj=None):
        # Who organises an event is the platform's decision, not the organiser's.
        if is_platform_admin(request.user):
            return self.readonly_fields
        return (*self.readonly_fields, "organisation", "organisers")

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

    @admin.display(description=_("as runners will see it"))
    def accent_preview(self, event):
        palette = event.palette if event.accent_colour and branding.HEX_COLOUR.match(
            event.accent_colour) else None
        if palette is None:
            return _("The site's own colours.")
        note = "" if palette.accent == palette.chosen else " " + _(
            "Too light to read on white: links and buttons use %(shade)s.") % {
            "shade": palette.accent}
        return format_html(
            '<span class="accent-preview" style="{}background:{};color:{}">{}</span>'
            '<span class="accent-preview" style="{}background:{};color:#fff">{}</span>'
            '<p class="help">{}</p>', SWATCH,
            palette.band, palette.on_band, _("Event band"), SWATCH, palette.accent, _("Button"),
            _("Contrast with white: %(ratio)s:1.") % {
                "ratio": formats.number_format(branding.contrast(palette.accent, "#ffffff"), 1)}
            + note)

    @admin.display(description=_("featured photos"))
    def featured_summary(self, event):
        if not event.pk:
            return _("Save the event first.")
        count = event.photos.filter(featured=True).count()
        grid = reverse("admin:events_event_tagging", args=[event.pk])
        if count:
            text = ngettext("%(count)d photo picked for the event page.",
                            "%(count)d photos picked for the event page.", count) % {
                "count": count}
        else:
            text = _("None picked: the event page shows its sharpest photos with faces.")
        return format_html('{} <a href="{}">{}</a>', text, grid + "?featured=1" if count else grid,
                           _("Pick them in the tagging grid"))

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


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    # Who runs which races is the platform's decision: platform admins only (like the
    # organisers of an event).
    list_display = ("name", "slug", "website", "event_count")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = ("name", "slug", "website", "description", "description_en")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(event_count=Count("events"))

    @admin.display(description=_("events"), ordering="event_count")
    def event_count(self, organisation):
        return organisation.event_count


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
