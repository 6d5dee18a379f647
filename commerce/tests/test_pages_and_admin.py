"""The shop's buttons on the search pages, and the organisers' admin of orders."""

from decimal import Decimal

import pytest
from django.urls import reverse

from commerce.models import Order, PricePack
from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def test_photo_page_offers_add_to_cart_only_when_the_event_sells(client, shop, make_public_photo):
    photo = make_public_photo(shop.event)
    url = reverse("search:photo", kwargs={"slug": shop.event.slug, "photo_id": photo.pk})
    assert "Ajouter au panier" in client.get(url).content.decode()
    PricePack.objects.filter(shop=shop).delete()
    assert "Ajouter au panier" not in client.get(url).content.decode()


def test_bib_results_offer_all_my_photos(client, shop, make_public_photo):
    make_public_photo(shop.event, bib="42")
    page = client.get(shop.event.get_absolute_url(), {"bib": "42"}).content.decode()
    assert "Acheter toutes mes photos (dossard 42)" in page
    response = client.post(reverse("commerce:add", kwargs={"slug": shop.event.slug}), {"bib": "42"})
    cart = client.get(response.url).context["view"]
    assert [item.bib for item in cart.items] == ["42"] and cart.quote.total == Decimal("25.00")


def test_bad_bib_is_refused_with_a_message(client, shop):
    response = client.post(reverse("commerce:add", kwargs={"slug": shop.event.slug}),
                           {"bib": "12a"}, follow=True)
    assert "Un numéro de dossard" in response.content.decode()
    assert not response.context["view"].items


def test_organisers_see_the_orders_of_their_events_only(client, shop, named_people):
    people = named_people(shop.event)
    other_event = EventFactory()
    fields = {"email": "r@example.org", "currency": "EUR", "total": Decimal("9.00"),
              "vat_rate": Decimal("20"), "vat_amount": Decimal("1.50")}
    ours = Order.objects.create(event=shop.event, **fields)
    theirs = Order.objects.create(event=other_event, **fields)
    client.force_login(people["owner"])
    listing = client.get(reverse("admin:commerce_order_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].queryset) == [ours]
    assert client.get(reverse("admin:commerce_order_change", args=[theirs.pk])).status_code == 302
    client.force_login(people["runner"])
    assert client.get(reverse("admin:commerce_order_changelist")).status_code == 302


def test_demo_shop_is_made_once(db):
    from django.core.management import call_command

    from events.services import DEMO_EVENT_SLUG

    event = EventFactory(slug=DEMO_EVENT_SLUG)
    call_command("load_demo_shop")
    call_command("load_demo_shop")
    assert [(p.quantity, p.price) for p in event.shop.packs.all()] == [
        (1, Decimal("9.00")), (3, Decimal("19.00")), (5, Decimal("25.00"))]
