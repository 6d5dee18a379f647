"""System checks of the shop's Stripe set-up (shown by ``migrate``, ``manage.py check`` and
``manage.py run``).

Stripe signs each webhook with the secret of the endpoint it is sent to, and dj-stripe
checks the signature against the secret stored on that endpoint's ``WebhookEndpoint`` row
(its URL ends in the row's UUID). The row and its secret are made together: the admin's
"add webhook endpoint" (Stripe payments → Webhook endpoints) creates the endpoint at
Stripe and keeps the secret Stripe returns once. So the secret is never a setting (one
in the environment would be a second copy to keep in step by hand), and what an
operator can forget is the endpoint itself: without it no payment is ever marked paid
by a webhook, only by ``manage.py reconcile_payments``.
"""

import os

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

# What the variable that earlier versions required with a live key must no longer suggest.
OBSOLETE_SECRET_VARIABLE = "STRIPE_WEBHOOK_SECRET"
ADD_ENDPOINT_HINT = (
    "In the admin: Stripe payments > Webhook endpoints > Add, with this site's public address "
    "(SITE_URL) as base URL{live}. dj-stripe creates the endpoint at Stripe and keeps its "
    "signing secret."
)


def _hint() -> str:
    return ADD_ENDPOINT_HINT.format(live=" and 'Live mode' ticked" if settings.STRIPE_LIVE_MODE else "")


@checks.register("commerce")
def check_stripe_webhook_endpoint(app_configs=None, **kwargs):
    """Payments go to Stripe: an enabled endpoint of the key's mode, with its secret, must exist."""
    found = []
    if os.environ.get(OBSOLETE_SECRET_VARIABLE):
        found.append(checks.Warning(
            f"{OBSOLETE_SECRET_VARIABLE} is set but nothing reads it: webhooks are verified with "
            "the secret stored on their webhook endpoint in the admin.",
            hint=f"Unset {OBSOLETE_SECRET_VARIABLE}. " + _hint(), id="commerce.W002"))
    # localstripe's endpoint is made by `manage.py setup_local_stripe`; no key: the shop is closed.
    if settings.STRIPE_LOCAL or not settings.STRIPE_SECRET_KEY:
        return found
    from djstripe.models import WebhookEndpoint

    try:
        receiving = (WebhookEndpoint.objects
                     .filter(livemode=settings.STRIPE_LIVE_MODE, status="enabled")
                     .exclude(secret="").exists())
    except DatabaseError:
        return found  # not migrated yet: the next command checks again
    if not receiving:
        mode = "live" if settings.STRIPE_LIVE_MODE else "test"
        found.append(checks.Warning(
            f"Payments use a {mode} Stripe key but no enabled {mode}-mode webhook endpoint with a "
            "signing secret is set up: paid orders stay unpaid until `manage.py reconcile_payments`.",
            hint=_hint(), id="commerce.W001"))
    return found
