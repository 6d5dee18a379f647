"""Ask Stripe for the state of recent unfinished payments, for webhooks that never came."""

import datetime

import stripe
from django.core.management import BaseCommand, CommandError
from django.utils import timezone

from commerce.models import Payment
from commerce.payments import provider
from commerce.services import apply_payment_intent


class Command(BaseCommand):
    help = "Bring unpaid recent orders up to date with Stripe (lost or late webhooks)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, default=72,
                            help="Look at payments started in the last HOURS hours (default 72).")

    def handle(self, *args, hours, **options):
        current = provider()
        if current is None:
            raise CommandError("Payments are not configured (STRIPE_SECRET_KEY).")
        since = timezone.now() - datetime.timedelta(hours=hours)
        payments = (Payment.objects.filter(created_at__gte=since)
                    .exclude(state__in=Payment.FINAL).exclude(provider_reference=""))
        changed = failed = 0
        for payment in payments:
            before = payment.state
            try:
                intent = current.client().v1.payment_intents.retrieve(payment.provider_reference)
            except stripe.StripeError as error:
                failed += 1
                self.stderr.write(f"{payment.provider_reference}: {error}")
                continue
            after = apply_payment_intent(intent, source="reconcile")
            if after is not None and after.state != before:
                changed += 1
        self.stdout.write(f"{payments.count()} payments checked, {changed} changed, "
                          f"{failed} could not be read.")
