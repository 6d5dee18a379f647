"""What the back office shows of the libraries RacePhoto is built on.

Django discovers this module after dj-stripe's and django-celery-results' own admin
modules (INSTALLED_APPS order), so what they register can be taken off here.

- dj-stripe registers about forty mirrors of Stripe objects. RacePhoto keeps its own
  orders, payments and refunds (commerce/) and uses dj-stripe only to receive Stripe's
  webhooks (commerce/webhooks.py: its object sync never runs, so those mirrors stay
  empty). Kept: the webhook endpoints, where the endpoint Stripe calls and its signing
  secret are set up, and the webhooks received, each with the error that stopped it
  (what to look at when an order stays unpaid, before `manage.py reconcile_payments`).
- django-celery-results' task rows are a developer's view (ids, raw arguments,
  tracebacks); what an operator acts on is recorded by the product itself (a photo's
  failed steps with "reprocess", a payment's state changes), and failures are logged.
"""

from django.apps import apps
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

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


_hide_unused_library_models(admin.site)
_name_kept_stripe_models()
