"""Prices for the demo event, so `make run` can sell a photo out of the box."""

from decimal import Decimal

from django.core.management import BaseCommand

from commerce.models import PricePack, Shop
from events.models import Event
from events.services import DEMO_EVENT_SLUG

DEMO_LADDER = ((1, "9.00"), (3, "19.00"), (5, "25.00"))


class Command(BaseCommand):
    help = "Give the demo event a shop (1 photo 9 €, 3 for 19 €, 5 for 25 €, all my photos 25 €)."

    def handle(self, *args, **options):
        event = Event.objects.filter(slug=DEMO_EVENT_SLUG).first()
        if event is None:
            self.stdout.write("No demo event: nothing to price.")
            return
        shop, created = Shop.objects.get_or_create(event=event,
                                                   defaults={"bundle_price": Decimal("25.00")})
        if created:
            PricePack.objects.bulk_create([PricePack(shop=shop, quantity=quantity, price=Decimal(price))
                                           for quantity, price in DEMO_LADDER])
        self.stdout.write(f"Demo shop: {'created' if created else 'already there'}.")
