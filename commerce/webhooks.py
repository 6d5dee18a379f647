"""What Stripe's webhooks do to our orders.

dj-stripe's endpoint verifies each webhook's signature and records the delivery (a
``WebhookEventTrigger`` row); then, instead of dj-stripe's own sync, this callback acts
on the event, inside dj-stripe's transaction:

- a PaymentIntent event goes to ``services.apply_payment_intent``: idempotent under a
  row lock, and a final state never changes again, so a repeated or late event changes
  nothing;
- a refund event (``charge.refunded`` for a refund made in Stripe's dashboard,
  ``charge.refund.updated`` when one succeeds or fails later) goes to
  ``refunds.sync_refunds``, which asks Stripe for the payment's refunds and records each
  one once, however many ways it is reported.

Why dj-stripe's deprecated callback and not its supported way (its ``webhook_*``
signals, or ``djstripe_receiver`` handlers): both run only around or after dj-stripe's
``Event.process``, which cannot be skipped. That sync first asks Stripe for the
account (``GET /v1/account``, which localstripe does not have, so every webhook of
``make run`` and of the tests would fail), then mirrors charges and intents through
more API calls that orders never read, and any failure there rolls back the order's
own update with it. The callback keeps dj-stripe's signature check and its delivery
records, and our row locks keep the idempotency. :func:`quiet_deprecation_warning`
silences dj-stripe's warning about it, and only while the callback is this one.
"""

from django.conf import settings

from commerce import refunds
from commerce.payments import provider as payment_provider
from commerce.services import apply_payment_intent

PAYMENT_INTENT_EVENTS = {"payment_intent.succeeded", "payment_intent.payment_failed",
                         "payment_intent.processing", "payment_intent.canceled"}
REFUND_EVENTS = {"charge.refunded", "charge.refund.updated"}
CALLBACK = "commerce.webhooks.process_trigger"


class PaymentsNotConfigured(Exception):
    """A refund event came, but nothing can ask Stripe about it (no keys)."""


def process_trigger(trigger, api_key=None):
    """DJSTRIPE_WEBHOOK_EVENT_CALLBACK: runs for a verified webhook, inside its transaction.

    An exception makes dj-stripe record it and answer 500, and Stripe sends the event again.
    """
    event = trigger.json_body
    kind = event.get("type")
    found = event.get("data", {}).get("object", {})
    source = f"webhook {event.get('id', '')}"
    if kind in PAYMENT_INTENT_EVENTS:
        if found.get("object") == "payment_intent" and found.get("id"):
            apply_payment_intent(found, source=source)
    elif kind in REFUND_EVENTS:
        # A charge (charge.refunded) or a refund (charge.refund.updated): both name the intent.
        intent_id = found.get("payment_intent")
        if found.get("object") in ("charge", "refund") and isinstance(intent_id, str) and intent_id:
            provider = payment_provider()
            if provider is None:
                raise PaymentsNotConfigured(source)
            refunds.sync_refunds(intent_id, provider=provider, source=source)
    trigger.processed = True


# dj-stripe's system check gives its deprecation warning no id, so SILENCED_SYSTEM_CHECKS
# cannot name it: it is recognised by its text.
_DEPRECATION = "DJSTRIPE_WEBHOOK_EVENT_CALLBACK is deprecated"


def quiet_deprecation_warning() -> None:
    """Drop dj-stripe's "callback is deprecated" warning from the system checks (printed by
    every manage.py command), and only that one: the check's other findings (a callback
    with the wrong arguments) stay, and the warning comes back if the setting names any
    other callback. Called from CommerceConfig.ready(), after dj-stripe registered it."""
    from django.core import checks
    from django.core.checks.registry import registry
    from djstripe.checks import check_webhook_event_callback_accepts_api_key as original

    if original not in registry.registered_checks:
        return

    def check_webhook_event_callback(app_configs=None, **kwargs):
        found = original(app_configs=app_configs, **kwargs)
        if getattr(settings, "DJSTRIPE_WEBHOOK_EVENT_CALLBACK", None) != CALLBACK:
            return found
        return [message for message in found
                if not (message.level == checks.WARNING and message.msg.startswith(_DEPRECATION))]

    registry.registered_checks.discard(original)
    registry.register(check_webhook_event_callback, "djstripe")
