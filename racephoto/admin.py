"""What the back office shows of the libraries RacePhoto is built on.

Django discovers this module after dj-stripe's and django-celery-results' own admin
modules (INSTALLED_APPS order), so what they register can be taken off here.

- dj-stripe registers about forty mirrors of Stripe objects. RacePhoto keeps its own
  orders, payments and refunds (commerce/) and uses dj-stripe only to receive Stripe's
  webhooks (commerce/webhooks.py: its object sync never runs, so those mirrors stay
  empty). Kept: the webhook endpoints, where the endpoint Stripe calls and its signing
  secret are set up, and the webhooks received, each with the error that stopped it
  (what to look at when an order stays unpaid, before `manage.py reconcile_payments`).
  The received webhooks' list gets columns and filters with translated titles
  (dj-stripe's are its English field names) and names the Stripe event each one carried.
- django-celery-results' task rows are a developer's view (ids, raw arguments,
  tracebacks); what an operator acts on is recorded by the product itself (a photo's
  failed steps with "reprocess", a payment's state changes), and failures are logged.
"""

from django.apps import apps
from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from djstripe.admin.admin import WebhookEventTriggerAdmin
from djstripe.models import WebhookEventTrigger

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


def _name_kept_stripe_models() -> None:
    stripe = apps.get_app_config(STRIPE_APP)
    stripe.verbose_name = _("Stripe payments")  # instead of "Djstripe"
    for model in stripe.get_models():
        if model.__name__ in KEPT_STRIPE_MODELS:
            # Display names only: migrations read Meta as the library declared it
            # (``_meta.original_attrs``), so no migration sees this.
            model._meta.verbose_name, model._meta.verbose_name_plural = (
                KEPT_STRIPE_MODELS[model.__name__])


def _titled(filter_class, title):
    """``filter_class`` under ``title``: the admin titles a field's filter with the field's
    verbose_name, which for a library's model is its English field name, and renaming the
    field itself would reach the library's migrations."""

    class TitledFilter(filter_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title

    return TitledFilter


class ReceivedWebhookAdmin(WebhookEventTriggerAdmin):
    """dj-stripe's read-only list of received webhooks, in the back office's words.

    Its ``event`` column is always empty here (that row is made by dj-stripe's object sync,
    which never runs: commerce/webhooks.py), so the Stripe event is read from the body; the
    Connect account, dj-stripe's version and the sender's address are left out of the list (no
    Connect; details a trigger's own page shows).
    """

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
        event = trigger.json_body
        if not event.get("type"):
            return None
        return format_html("{}<br><small>{}</small>", event["type"], event.get("id", ""))

    # The endpoint's URL is long and the same on every row of a mode: its mode says which.
    @admin.display(description=_("mode"), ordering="webhook_endpoint__livemode")
    def endpoint_mode(self, trigger):
        endpoint = trigger.webhook_endpoint
        if endpoint is None:
            return None
        if endpoint.livemode:
            return pgettext_lazy("Stripe mode", "live")
        return pgettext_lazy("Stripe mode", "test")

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


_hide_unused_library_models(admin.site)
_name_kept_stripe_models()
admin.site.unregister(WebhookEventTrigger)
admin.site.register(WebhookEventTrigger, ReceivedWebhookAdmin)
