"""What Stripe's PaymentIntent events do to our orders.

dj-stripe's endpoint verifies each webhook's signature and records the delivery (a
``WebhookEventTrigger`` row); then, instead of dj-stripe's own sync (which looks up the
Stripe account through the API first, something localstripe does not have, and which
our orders do not need), this callback applies the PaymentIntent in the event with
``services.apply_payment_intent``: idempotent under a row lock, and a final state never
changes again, so a repeated or late event changes nothing.
"""

from commerce.services import apply_payment_intent

PAYMENT_INTENT_EVENTS = {"payment_intent.succeeded", "payment_intent.payment_failed",
                         "payment_intent.processing", "payment_intent.canceled"}


def process_trigger(trigger, api_key=None):
    """DJSTRIPE_WEBHOOK_EVENT_CALLBACK: runs for a verified webhook, inside its transaction."""
    event = trigger.json_body
    if event.get("type") in PAYMENT_INTENT_EVENTS:
        intent = event.get("data", {}).get("object", {})
        if intent.get("object") == "payment_intent" and intent.get("id"):
            apply_payment_intent(intent, source=f"webhook {event.get('id', '')}")
    trigger.processed = True
