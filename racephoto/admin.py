"""What the back office shows of the libraries RacePhoto is built on.

Django discovers this module after dj-stripe's and django-celery-results' own admin
modules (INSTALLED_APPS order), so what they register can be taken off here.

- dj-stripe registers about forty mirrors of Stripe objects. RacePhoto keeps its own
  orders, payments and refunds (commerce/) and uses dj-stripe only to receive Stripe's
  webhooks (commerce/webhooks.py: its object sync never runs, so those mirrors stay
  empty). Kept: the webhook endpoints, where the endpoint Stripe calls and its signing
  secret are set up, and the webhooks received, each with the error that stopped it
  (what to look at when an order stays unpaid, before `manage.py reconcile_payments`).
  Both are dj-stripe's admins in the back office's words: dj-stripe's labels and help
  texts are its English field names and docstrings, its notices and actions English text.
  The received webhooks' list gets columns and filters with translated titles; a webhook's
  own page, translated labels; each webhook is named by the Stripe event it carried. The webhook
  endpoints' pages keep what dj-stripe's do (an endpoint added, changed or deleted here is
  so at Stripe too; syncing from Stripe) through dj-stripe's forms, subclassed here for
  their labels, help texts and choices, and for the metadata typed, which dj-stripe's "add"
  form would not send; their notices are templates of ours
  (templates/admin/djstripe/).
- django-celery-results' task rows are a developer's view (ids, raw arguments,
  tracebacks); what an operator acts on is recorded by the product itself (a photo's
  failed steps with "reprocess", a payment's state changes), and failures are logged.
"""

import stripe
from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.http import Http404
from django.shortcuts import render
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from djstripe.admin.admin import WebhookEndpointAdmin, WebhookEventTriggerAdmin
from djstripe.admin.forms import (
    CustomActionForm,
    WebhookEndpointAdminCreateForm,
    WebhookEndpointAdminEditForm,
    validate_public_url,
)
from djstripe.admin.views import ConfirmCustomAction
from djstripe.enums import WebhookEndpointStatus, WebhookEndpointValidation
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

STRIPE_APP = "djstripe"
TASK_RESULTS_APP = "django_celery_results"

# The dj-stripe models a platform admin uses, with the names the back office gives them
# (dj-stripe's own are English class names).
KEPT_STRIPE_MODELS = {
    "WebhookEndpoint": (_("webhook endpoint"), _("webhook endpoints")),
    "WebhookEventTrigger": (_("received webhook"), _("received webhooks")),
}


def _hide_unused_library_models(site) -> None:
    for app_label in (STRIPE_APP, TASK_RESULTS_APP):
        for model in apps.get_app_config(app_label).get_models():
            kept = app_label == STRIPE_APP and model.__name__ in KEPT_STRIPE_MODELS
            if not kept and site.is_registered(model):
                site.unregister(model)


def stripe_event_of(trigger) -> dict:
    """The Stripe event a received webhook carried ({} when its body is not one)."""
    event = trigger.json_body
    return event if isinstance(event, dict) else {}


def received_webhook_name(trigger) -> str:
    """A received webhook by the Stripe event it carried, else by its number."""
    event = stripe_event_of(trigger)
    if event.get("type"):
        return f"{event['type']} {event.get('id', '')}".strip()
    return gettext("Received webhook %(number)s") % {"number": trigger.pk}


def _name_kept_stripe_models() -> None:
    stripe = apps.get_app_config(STRIPE_APP)
    stripe.verbose_name = _("Stripe payments")  # instead of "Djstripe"
    for model in stripe.get_models():
        if model.__name__ in KEPT_STRIPE_MODELS:
            # Display names only: migrations read Meta as the library declared it
            # (``_meta.original_attrs``), so no migration sees this.
            model._meta.verbose_name, model._meta.verbose_name_plural = (
                KEPT_STRIPE_MODELS[model.__name__])
    # dj-stripe's str() of a received webhook is "id=1, valid=True, processed=True": the admin
    # names an object by its str() in page titles, breadcrumbs, the deletion question and list,
    # its notices and its log, so it is replaced rather than each of those pages.
    WebhookEventTrigger.__str__ = received_webhook_name


def _titled(filter_class, title):
    """``filter_class`` under ``title``: the admin titles a field's filter with the field's
    verbose_name, which for a library's model is its English field name, and renaming the
    field itself would reach the library's migrations."""

    class TitledFilter(filter_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return TitledFilter


def stripe_mode(livemode: bool | None):
    """How the back office names a Stripe mode (None: not known)."""
    if livemode is None:
        return None
    return pgettext_lazy("Stripe mode", "live") if livemode else pgettext_lazy("Stripe mode", "test")


class ReceivedWebhookForm(forms.ModelForm):
    """What a received webhook's page calls its fields (it shows them read-only: the admin
    takes their labels and help texts from the form's Meta)."""

    class Meta:
        model = WebhookEventTrigger
        fields = ()
        labels = {
            "created": _("received"),
            "webhook_endpoint": _("Endpoint"),
            "traceback": _("Traceback"),
            "djstripe_version": _("Version of dj-stripe"),
            "remote_ip": _("Sender's address"),
            "headers": _("Headers"),
            "body": _("Body"),
        }
        help_texts = {
            "webhook_endpoint": _("The endpoint Stripe sent this webhook to."),
            "traceback": _("Where processing failed, for a developer."),
            "djstripe_version": _("The version of dj-stripe that received it."),
            "remote_ip": _("The IP address the webhook came from."),
            "headers": _("The request's HTTP headers, Stripe's signature among them."),
            "body": _("The event as Stripe sent it (JSON)."),
        }


class ReceivedWebhookAdmin(WebhookEventTriggerAdmin):
    """dj-stripe's read-only list and pages of received webhooks, in the back office's words.

    Its ``event`` column is always empty here (that row is made by dj-stripe's object sync,
    which never runs: commerce/webhooks.py), so the Stripe event is read from the body; the
    Connect account, dj-stripe's version and the sender's address are left out of the list (no
    Connect; details a trigger's own page shows). That page leaves out the two always-empty
    fields (the synced event, the Connect account).
    """

    form = ReceivedWebhookForm
    fieldsets = (
        (None, {"fields": ("created", "stripe_event", "webhook_endpoint", "outcome", "traceback",
                           "djstripe_version")}),
        (_("What Stripe sent"), {"fields": ("remote_ip", "headers", "body")}),
    )
    readonly_fields = ("created", "stripe_event", "outcome")
    list_display = ("received", "stripe_event", "endpoint_mode", "outcome")
    list_filter = (
        ("created", _titled(admin.DateFieldListFilter, _("date received"))),
        ("valid", _titled(admin.BooleanFieldListFilter, _("valid signature"))),
        ("processed", _titled(admin.BooleanFieldListFilter, _("successful processing"))),
    )
    ordering = ("-created",)

    @admin.display(description=_("received"), ordering="created")
    def received(self, trigger):
        return trigger.created

    # Its type, and under it its id (to look it up in Stripe's dashboard): one column, so the
    # list fits a laptop beside the navigation and the filters.
    @admin.display(description=_("Stripe event"))
    def stripe_event(self, trigger):
        event = stripe_event_of(trigger)
        if not event.get("type"):
            return None
        return format_html("{}<br><small>{}</small>", event["type"], event.get("id", ""))

    # The endpoint's URL is long and the same on every row of a mode: its mode says which.
    @admin.display(description=_("mode"), ordering="webhook_endpoint__livemode")
    def endpoint_mode(self, trigger):
        endpoint = trigger.webhook_endpoint
        return None if endpoint is None else stripe_mode(endpoint.livemode)

    # One column for what became of it, its error under it: dj-stripe's separate "valid" and
    # "processed" ticks pushed the error out of sight on a laptop.
    @admin.display(description=_("outcome"))
    def outcome(self, trigger):
        if not trigger.valid:
            said = _("refused: invalid signature")
        elif trigger.processed:
            said = _("processed")
        else:
            said = _("failed")
        if not trigger.exception:
            return said
        return format_html("{}<br><small>{}</small>", said, trigger.exception)


# --- Webhook endpoints ------------------------------------------------------------------

# How an endpoint's fields read, on its pages and in its forms: {name: (label, help text)}.
# dj-stripe's own are its English field names and help texts; dj-stripe's forms set some
# of theirs themselves, so the forms below set these after them.
ENDPOINT_FIELDS = {
    "id": (_("Stripe ID"), ""),
    "livemode": (_("Live mode"), _("Whether the endpoint receives live payments (or those of "
                                   "Stripe's test mode).")),
    "djstripe_owner_account": (_("Stripe account"), _("The Stripe account it belongs to.")),
    "url": (_("URL"), _("The address Stripe sends the webhooks to.")),
    "created": (_("Created"), _("When it was created at Stripe.")),
    "enabled": (_("Enabled"), _("Disabled, the endpoint receives no more events.")),
    "base_url": (_("Site address"), _("Changing it changes the address Stripe calls; it must "
                                      "be reachable from the internet.")),
    "enabled_events": (_("Events sent"), _("The events Stripe sends here: keep * (all of them), "
                                           "or choose at least the payment_intent.* and "
                                           "charge.refund* ones orders follow.")),
    "metadata": (_("Metadata"), _('Key-value pairs kept with the endpoint at Stripe: a JSON object '
                                  'of texts, e.g. {"site": "photos"}. Leave empty for none.')),
    "api_version": (_("API version"), _("The version of Stripe's API the events are sent in.")),
    "djstripe_uuid": (_("Endpoint UUID"), _("Identifies the endpoint in the address Stripe "
                                             "calls.")),
    "djstripe_tolerance": (_("Signature tolerance (seconds)"), _(
        "How old a webhook's signature may be before the webhook is refused, against replayed "
        "webhooks. Keep the default unless you know why.")),
    "djstripe_validation_method": (_("Verification"), _("How a received webhook is checked to "
                                                        "come from Stripe.")),
}
# What differs on the "add" form, where the endpoint is created at Stripe.
NEW_ENDPOINT_FIELDS = ENDPOINT_FIELDS | {
    "djstripe_owner_account": (_("Stripe account"), _(
        "Leave empty to use the site's Stripe key (STRIPE_SECRET_KEY).")),
    "livemode": (_("Live mode"), _(
        "With a Stripe account chosen: create the endpoint with its live key (ticked) or its test "
        "key. Without one, the site's key decides the mode.")),
    "base_url": (_("Site address"), _(
        "The site's public address, e.g. https://photos.example.org: Stripe will call it at a "
        "path of the endpoint's own.")),
    "connect": (_("Events of connected accounts"), _(
        "Stripe Connect only: also receive the events of the accounts connected to this one. "
        "RacePhoto does not use Connect.")),
}
VERIFICATIONS = {
    WebhookEndpointValidation.verify_signature: _("Check its signature"),
    WebhookEndpointValidation.retrieve_event: _("Ask Stripe for the event again"),
    WebhookEndpointValidation.none: _("None (not recommended)"),
}
# dj-stripe's fieldsets, under titles of ours.
FIELDSET_TITLES = {"Endpoint configuration": _("Endpoint configuration"),
                   "Advanced": _("Advanced options")}


def validate_reachable_address(value):
    """dj-stripe's check that Stripe could call the address, with a message of ours."""
    try:
        validate_public_url(value)
    except ValidationError:
        raise ValidationError(_("Stripe cannot reach this address from the internet: give the "
                                "site's public address."), code="not_public") from None


# The metadata key dj-stripe keeps on the endpoints it creates: the endpoint's UUID, which is
# in the address Stripe calls. dj-stripe copies Stripe's value onto the row's UUID at each save
# or sync, so a value edited here would no longer match that address and Stripe's calls would
# find no endpoint: the key is kept out of the Metadata box and sent back as it was.
DJSTRIPE_METADATA_KEY = "djstripe_uuid"
# What Stripe accepts as metadata (https://docs.stripe.com/api/metadata).
STRIPE_METADATA_KEYS = 50
STRIPE_METADATA_KEY_LENGTH = 40
STRIPE_METADATA_VALUE_LENGTH = 500


class StripeMetadataField(forms.JSONField):
    """Stripe metadata as an operator types it: a JSON object of texts, within Stripe's limits;
    an empty box for none (Django's JSON box shows "null")."""

    default_error_messages = {
        "invalid": _('This is not valid JSON: write an object of texts, e.g. {"site": "photos"}.'),
        "not_object": _('Write the metadata as a JSON object of texts, e.g. {"site": "photos"}.'),
        "not_text": _("The value of “%(key)s” must be a text, in quotes: Stripe keeps nothing else."),
        "reserved": _("“%(key)s” is dj-stripe's own key (the address Stripe calls depends on it): "
                      "leave it out."),
        "brackets": _("Stripe refuses square brackets in keys: “%(key)s”."),
        "key_too_long": _("The key “%(key)s” is longer than Stripe's %(limit)d characters."),
        "value_too_long": _("The value of “%(key)s” is longer than Stripe's %(limit)d characters."),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # How many keys the operator may add: Stripe's limit, less dj-stripe's own key where the
        # endpoint carries it (each form sets it).
        self.key_limit = STRIPE_METADATA_KEYS

    def to_python(self, value):
        value = super().to_python(value)
        return {} if value is None else value  # an empty box, or "null": no metadata

    def prepare_value(self, value):
        return "" if value in (None, {}) else super().prepare_value(value)

    def validate(self, value):
        super().validate(value)
        if not isinstance(value, dict):
            raise ValidationError(self.error_messages["not_object"], code="not_object")
        if len(value) > self.key_limit:
            raise ValidationError(
                ngettext("Stripe keeps at most %(limit)d key here.",
                         "Stripe keeps at most %(limit)d keys here.", self.key_limit),
                code="too_many_keys", params={"limit": self.key_limit})
        for key, text in value.items():
            if key == DJSTRIPE_METADATA_KEY:
                self.refuse("reserved", key)
            if "[" in key or "]" in key:
                self.refuse("brackets", key)
            if len(key) > STRIPE_METADATA_KEY_LENGTH:
                self.refuse("key_too_long", key, STRIPE_METADATA_KEY_LENGTH)
            if not isinstance(text, str):
                self.refuse("not_text", key)
            if len(text) > STRIPE_METADATA_VALUE_LENGTH:
                self.refuse("value_too_long", key, STRIPE_METADATA_VALUE_LENGTH)

    def refuse(self, code, key, limit=None):
        raise ValidationError(self.error_messages[code], code=code, params={"key": key, "limit": limit})


class TranslatedEndpointForm:
    """A dj-stripe endpoint form in the back office's words, sent to Stripe only when valid.

    dj-stripe creates or updates the endpoint at Stripe while validating the form
    (``_post_clean``), before knowing whether the form is valid: a form refused for another
    field would still have made an endpoint at Stripe, which nothing here would know about.
    """

    field_texts: dict = ENDPOINT_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What Stripe holds (the row is a copy of it), dj-stripe's key among it.
        self.stripe_metadata = dict(self.instance.metadata or {})
        if self.sends_djstripe_key():
            self.fields["metadata"].key_limit = STRIPE_METADATA_KEYS - 1
        for name, field in self.fields.items():
            if name in self.field_texts:
                field.label, field.help_text = self.field_texts[name]
        if "djstripe_validation_method" in self.fields:
            field = self.fields["djstripe_validation_method"]
            field.choices = [(value, VERIFICATIONS.get(value, label)) for value, label in field.choices]
        if "base_url" in self.fields:
            field = self.fields["base_url"]
            field.validators = [validate_reachable_address if check is validate_public_url else check
                                for check in field.validators]

    def get_initial_for_field(self, field, field_name):
        if field_name == "metadata":
            return {key: value for key, value in self.stripe_metadata.items()
                    if key != DJSTRIPE_METADATA_KEY}
        return super().get_initial_for_field(field, field_name)

    def _post_clean(self):
        if self._errors:
            return forms.ModelForm._post_clean(self)  # not dj-stripe's: it calls Stripe
        self.pass_metadata_to_djstripe(self.cleaned_data["metadata"])
        return super()._post_clean()

    def sends_djstripe_key(self) -> bool:
        raise NotImplementedError

    def pass_metadata_to_djstripe(self, typed: dict):
        """Put the metadata typed where dj-stripe's form reads what it sends Stripe."""
        raise NotImplementedError


def _labels(texts):
    return {name: label for name, (label, _help) in texts.items()}


def _help_texts(texts):
    return {name: help_text for name, (_label, help_text) in texts.items()}


class NewEndpointForm(TranslatedEndpointForm, WebhookEndpointAdminCreateForm):
    field_texts = NEW_ENDPOINT_FIELDS

    class Meta(WebhookEndpointAdminCreateForm.Meta):
        labels = _labels(NEW_ENDPOINT_FIELDS)
        help_texts = _help_texts(NEW_ENDPOINT_FIELDS)
        field_classes = {"metadata": StripeMetadataField}

    def sends_djstripe_key(self) -> bool:
        return True  # dj-stripe adds it to every endpoint it creates

    def pass_metadata_to_djstripe(self, typed):
        # dj-stripe creates the endpoint with the instance's metadata (not the form's, which the
        # instance gets only later), its own key added.
        self.instance.metadata = dict(typed)


class EndpointForm(TranslatedEndpointForm, WebhookEndpointAdminEditForm):
    # Its Meta also names the page's read-only fields (the admin reads their labels there).
    class Meta(WebhookEndpointAdminEditForm.Meta):
        labels = _labels(ENDPOINT_FIELDS)
        help_texts = _help_texts(ENDPOINT_FIELDS)
        field_classes = {"metadata": StripeMetadataField}

    def sends_djstripe_key(self) -> bool:
        return DJSTRIPE_METADATA_KEY in self.stripe_metadata

    def pass_metadata_to_djstripe(self, typed):
        # dj-stripe updates the endpoint with the form's metadata, and Stripe merges what it is
        # sent into what it has: a key taken out of the box is unset by sending it empty, and
        # dj-stripe's own key is sent back unchanged.
        sent = {key: "" for key in self.stripe_metadata if key not in typed}
        sent.update(typed)
        if self.sends_djstripe_key():
            sent[DJSTRIPE_METADATA_KEY] = self.stripe_metadata[DJSTRIPE_METADATA_KEY]
        self.cleaned_data["metadata"] = sent

    def get_initial_for_field(self, field, field_name):
        # dj-stripe ticks "enabled" whatever the endpoint's status: saving a disabled one
        # unchanged would enable it again.
        if field_name == "enabled":
            return self.instance.status != WebhookEndpointStatus.disabled
        return super().get_initial_for_field(field, field_name)


class EndpointSyncConfirmation(ConfirmCustomAction):
    """dj-stripe's "sync from Stripe" confirmation, for endpoints and platform admins only.

    dj-stripe's view answers anyone who may open the admin (an organiser too) and any of its
    models; its messages are English.
    """

    template_name = "admin/djstripe/webhookendpoint/sync_confirmation.html"
    model_admin = None

    def dispatch(self, request, *args, **kwargs):
        if kwargs["model_name"] != WebhookEndpoint._meta.model_name:
            raise Http404
        if kwargs["action_name"] not in ("_resync_instances", "_sync_all_instances"):
            raise Http404
        if not self.model_admin.has_change_permission(request):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def _resync_instances(self, request, queryset):
        for endpoint in queryset:
            api_key = endpoint.default_api_key
            try:
                if endpoint.djstripe_owner_account:
                    data = endpoint.api_retrieve(stripe_account=endpoint.djstripe_owner_account.id,
                                                 api_key=api_key)
                else:
                    data = endpoint.api_retrieve()
                WebhookEndpoint.sync_from_stripe_data(data, api_key=api_key)
                messages.success(request, gettext("Synced from Stripe: %(endpoint)s")
                                 % {"endpoint": endpoint}, fail_silently=True)
            except stripe.InvalidRequestError as error:
                if error.code != "resource_missing":
                    raise
                # Deleted at Stripe (its dashboard, another site): the row here is all that is left.
                messages.warning(request, gettext(
                    "Stripe no longer has %(endpoint)s: delete it here, or add it again.")
                    % {"endpoint": endpoint}, fail_silently=True)
            except (stripe.PermissionError, stripe.AuthenticationError) as error:
                messages.warning(request, gettext("Stripe refused: %(error)s") % {"error": error},
                                 fail_silently=True)
            except stripe.APIConnectionError:
                messages.warning(request, gettext(
                    "Stripe could not be reached for %(endpoint)s: nothing was changed, try again "
                    "later.") % {"endpoint": endpoint}, fail_silently=True)

    def _sync_all_instances(self, request, queryset):
        call_command("djstripe_sync_models", WebhookEndpoint.__name__)
        messages.success(request, gettext("The webhook endpoints were synced from Stripe."))


class StripeWebhookEndpointAdmin(WebhookEndpointAdmin):
    """dj-stripe's webhook endpoints, in the back office's words (see the module's docstring).

    Its templates are ours, found by Django's usual names (admin/djstripe/webhookendpoint/).
    """

    change_form_template = None
    add_form_template = None
    delete_confirmation_template = None
    list_display = ("__str__", "endpoint_mode", "stripe_account", "created_at", "api_version_used")

    @admin.display(description=_("mode"), ordering="livemode")
    def endpoint_mode(self, endpoint):
        return stripe_mode(endpoint.livemode)

    @admin.display(description=_("Stripe account"), ordering="djstripe_owner_account")
    def stripe_account(self, endpoint):
        return endpoint.djstripe_owner_account

    @admin.display(description=_("Created"), ordering="created")
    def created_at(self, endpoint):
        return endpoint.created

    @admin.display(description=_("API version"), ordering="api_version")
    def api_version_used(self, endpoint):
        return endpoint.api_version or None

    def get_form(self, request, obj=None, *args, **kwargs):
        return EndpointForm if obj else NewEndpointForm

    def get_fieldsets(self, request, obj=None):
        return [(FIELDSET_TITLES.get(title, title), options)
                for title, options in super().get_fieldsets(request, obj)]

    # dj-stripe's two actions, under the names its confirmation page posts back.
    @admin.action(description=_("Sync the selected endpoints from Stripe"))
    def _resync_instances(self, request, queryset):
        return self._confirm_sync(request, queryset, "_resync_instances")

    @admin.action(description=_("Sync every endpoint from Stripe"))
    def _sync_all_instances(self, request, queryset):
        return self._confirm_sync(request, queryset, "_sync_all_instances")

    def _confirm_sync(self, request, queryset, action_name):
        context = {**self.admin_site.each_context(request), "opts": self.opts,
                   "title": _("Sync from Stripe"),
                   **self.get_admin_action_context(queryset, action_name, CustomActionForm)}
        return render(request, EndpointSyncConfirmation.template_name, context)

    def get_urls(self):
        view = EndpointSyncConfirmation.as_view(model_admin=self)
        return [path("action/<str:action_name>/<str:model_name>/", self.admin_site.admin_view(view),
                     name="djstripe_custom_action"),
                *super().get_urls()]


_hide_unused_library_models(admin.site)
_name_kept_stripe_models()
for model, model_admin in ((WebhookEventTrigger, ReceivedWebhookAdmin),
                           (WebhookEndpoint, StripeWebhookEndpointAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)


