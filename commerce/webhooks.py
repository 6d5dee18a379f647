"""What Stripe's PaymentIntent events do to our orders.

dj-stripe's endpoint verifies each webhook's signature and records the event once
(a second delivery of the same event id is not processed again); these receivers then
apply the PaymentIntent in the event with ``services.apply_payment_intent``, which is
idempotent and ignores news older than a final state.
"""

from djstripe.event_handlers import djstripe_receiver

from commerce.services import apply_payment_intent


@djstripe_receiver(["payment_intent.succeeded", "payment_intent.payment_failed",
                    "payment_intent.processing", "payment_intent.canceled"])
def payment_intent_changed(sender, event, **kwargs):
    intent = event.data["object"]
    apply_payment_intent(intent, source=f"webhook {event.id}")
