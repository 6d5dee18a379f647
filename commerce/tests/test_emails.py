"""The confirmation e-mail in the buyer's language, with links that open what they say."""

import re

import pytest
from django.conf import settings
from django.core import mail
from django.utils import translation

from commerce.models import Order
from commerce.tests.conftest import add, deliver, pay_with_card, signed_event, start_checkout

pytestmark = pytest.mark.django_db


def buy_in(language, client, shop, stripe_local, webhook_endpoint, photos) -> Order:
    """A purchase made on the site's pages in ``language`` (/fr/… or /en/…)."""
    with translation.override(language):
        for photo in photos:
            add(client, shop.event, photo=photo.pk)
        payment = start_checkout(client, shop.event).context["payment"]
    intent = pay_with_card(stripe_local, payment)
    body, signature = signed_event("payment_intent.succeeded", intent, f"evt_mail_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    return Order.objects.get(pk=payment.order_id)


def links_in(body: str) -> list[str]:
    site = re.escape(settings.SITE_URL.rstrip("/"))
    return [match.group(1) for match in re.finditer(site + r"(/\S+)", body)]


@pytest.mark.parametrize(("language", "subject", "phrases"), [
    ("fr", "[{site}] Vos photos — commande {number}",
     ["Merci pour votre commande de photos de", "Toutes les photos dans un ZIP\u00a0:",
      "Photo {photo}\u00a0:", "Les liens sont personnels et expirent après 30 jours."]),
    ("en", "[{site}] Your photos — order {number}",
     ["Thank you for your order of photos from", "All photos in one ZIP:", "Photo {photo}:",
      "The links are personal and expire after 30 days."]),
])
def test_confirmation_is_in_the_buyers_language_with_working_links(
        language, subject, phrases, client, shop, stripe_local, webhook_endpoint, make_public_photo):
    photos = [make_public_photo(shop.event) for _ in range(2)]
    order = buy_in(language, client, shop, stripe_local, webhook_endpoint, photos)
    assert order.language == language
    (message,) = mail.outbox
    assert message.to == [order.email]
    assert message.subject == subject.format(site=settings.SITE_NAME, number=order.pk)
    for phrase in phrases:
        assert phrase.format(photo=photos[0].pk) in message.body
    assert "%(" not in message.body and "{{" not in message.body
    paths = links_in(message.body)
    # The order page (in the buyer's language), the ZIP, one link per photo.
    assert len(paths) == 4 and paths[0].startswith(f"/{language}/orders/{order.token}/")
    responses = [client.get(path) for path in paths]
    assert [response.status_code for response in responses] == [200, 200, 200, 200]
    assert responses[1]["Content-Type"] == "application/zip"
    assert b"".join(responses[2].streaming_content) == photos[0].original.open("rb").read()
