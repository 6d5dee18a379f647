"""The shop's set-up check: with Stripe keys, an endpoint of the key's mode must receive webhooks.

Webhooks are verified with the secret on their endpoint's row (made by the admin's "add
webhook endpoint"), so the check looks for that row, and warns about the variable that
earlier versions required but nothing reads.
"""

import pytest
from django.core import checks
from djstripe.models import WebhookEndpoint

from commerce.checks import check_stripe_webhook_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_stripe(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    settings.STRIPE_LOCAL = False
    settings.STRIPE_SECRET_KEY = "sk_live_shop"
    settings.STRIPE_LIVE_MODE = True
    return settings


def endpoint(number=1, **fields):
    values = {"livemode": True, "status": "enabled", "secret": "whsec_live",
              "url": f"https://photos.example.org/stripe/webhook/{number}/", "enabled_events": ["*"]}
    return WebhookEndpoint.objects.create(id=f"we_{number}", **{**values, **fields})


def ids():
    return [message.id for message in check_stripe_webhook_endpoint()]


def test_live_payments_without_an_endpoint_warn_and_say_what_to_do(live_stripe):
    [warning] = check_stripe_webhook_endpoint()
    assert (warning.id, warning.level) == ("commerce.W001", checks.WARNING)
    assert "live Stripe key" in warning.msg and "reconcile_payments" in warning.msg
    assert "Webhook endpoints > Add" in warning.hint and "'Live mode' ticked" in warning.hint


@pytest.mark.parametrize("fields", [
    {"livemode": False},     # a test-mode endpoint never gets live events
    {"status": "disabled"},  # Stripe sends nothing to it
    {"secret": ""},          # dj-stripe could verify nothing it receives
])
def test_an_endpoint_that_cannot_receive_the_keys_webhooks_does_not_count(live_stripe, fields):
    endpoint(**fields)
    assert ids() == ["commerce.W001"]


def test_an_enabled_endpoint_of_the_keys_mode_with_its_secret_passes(live_stripe):
    endpoint(1, livemode=False)
    endpoint(2)
    assert ids() == []


def test_a_test_key_against_stripe_needs_a_test_mode_endpoint(live_stripe):
    live_stripe.STRIPE_SECRET_KEY, live_stripe.STRIPE_LIVE_MODE = "sk_test_shop", False
    endpoint(1)
    [warning] = check_stripe_webhook_endpoint()
    assert "test Stripe key" in warning.msg and "Live mode" not in warning.hint
    endpoint(2, livemode=False)
    assert ids() == []


def test_localstripe_and_a_closed_shop_need_no_endpoint(settings, monkeypatch):
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    settings.STRIPE_LOCAL, settings.STRIPE_SECRET_KEY = True, "sk_test_localstripe"
    assert ids() == []
    settings.STRIPE_LOCAL, settings.STRIPE_SECRET_KEY = False, ""
    assert ids() == []


def test_the_old_webhook_secret_variable_is_named_as_unread(live_stripe, monkeypatch):
    endpoint()
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_from_the_dashboard")
    [warning] = check_stripe_webhook_endpoint()
    assert warning.id == "commerce.W002"
    assert "nothing reads it" in warning.msg and warning.hint.startswith("Unset STRIPE_WEBHOOK_SECRET.")


def test_the_check_runs_with_the_system_checks(live_stripe):
    assert "commerce.W001" in [message.id for message in checks.run_checks(tags=["commerce"])]
