""""Send my links again": the links go to the buyer in their language, and the page says
the same whatever the address, within a per-address limit."""

import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from commerce import refunds
from commerce.models import Order
from commerce.resend import RESEND_LIMIT
from commerce.tests.conftest import add, deliver, pay_with_card, signed_event, start_checkout

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _eager_tasks(settings, own_cache):
    settings.CELERY_TASK_ALWAYS_EAGER = True


def buy(shop, stripe_local, webhook_endpoint, photo, email, language="fr") -> Order:
    client = Client()
    with translation.override(language):
        add(client, shop.event, photo=photo.pk)
        payment = start_checkout(client, shop.event, email=email).context["payment"]
    intent = pay_with_card(stripe_local, payment)
    body, signature = signed_event("payment_intent.succeeded", intent, f"evt_resend_{payment.pk}")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200
    mail.outbox.clear()  # the confirmation
    return Order.objects.get(pk=payment.order_id)


def ask(client, django_capture_on_commit_callbacks, email, event, language="en"):
    with translation.override(language):
        url = reverse("commerce:resend")
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(url, {"email": email, "event": event.slug}, follow=True)


def answer_text(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def test_links_are_sent_again_in_the_buyers_language_and_work(
        client, shop, stripe_local, webhook_endpoint, make_public_photo,
        django_capture_on_commit_callbacks):
    photo = make_public_photo(shop.event)
    order = buy(shop, stripe_local, webhook_endpoint, photo, "Runner@Example.org", language="fr")
    # Asked from the English page, with the address typed in another case.
    response = ask(client, django_capture_on_commit_callbacks, "runner@example.ORG", shop.event)
    assert response.status_code == 200
    (message,) = mail.outbox
    assert message.to == ["Runner@Example.org"]
    assert message.subject == (f"[{settings.SITE_NAME}] Vos liens de téléchargement — "
                               f"{shop.event.display_name}")
    assert f"Commande {order.pk} du " in message.body and "Toutes les photos dans un ZIP" in message.body
    paths = re.findall(re.escape(settings.SITE_URL.rstrip("/")) + r"(/\S+)", message.body)
    assert len(paths) == 3  # order page, ZIP, the photo
    assert [Client().get(path).status_code for path in paths] == [200, 200, 200]


def test_the_answer_is_the_same_whether_or_not_the_address_bought(
        client, shop, stripe_local, webhook_endpoint, make_public_photo,
        django_capture_on_commit_callbacks):
    buy(shop, stripe_local, webhook_endpoint, make_public_photo(shop.event), "buyer@example.org")
    bought = ask(client, django_capture_on_commit_callbacks, "buyer@example.org", shop.event)
    assert len(mail.outbox) == 1
    never = ask(client, django_capture_on_commit_callbacks, "nobody@example.org", shop.event)
    assert len(mail.outbox) == 1  # nothing sent to an address without orders
    assert bought.status_code == never.status_code == 200
    assert bought.redirect_chain == never.redirect_chain
    assert answer_text(bought).replace("buyer", "X") == answer_text(never).replace("nobody", "X")
    assert "If this address bought photos of" in answer_text(never)


def test_requests_are_throttled_per_address_whether_or_not_it_bought(
        client, shop, stripe_local, webhook_endpoint, make_public_photo,
        django_capture_on_commit_callbacks):
    buy(shop, stripe_local, webhook_endpoint, make_public_photo(shop.event), "buyer@example.org")
    for address in ("buyer@example.org", "nobody@example.org"):
        for _request in range(RESEND_LIMIT):
            assert ask(client, django_capture_on_commit_callbacks, address, shop.event).status_code == 200
        refused = ask(client, django_capture_on_commit_callbacks, address.upper(), shop.event)
        assert refused.status_code == 429
        assert "wait an hour" in str(refused.context["form"].non_field_errors())
    assert len(mail.outbox) == RESEND_LIMIT
    # Another address is not held back by those.
    assert ask(client, django_capture_on_commit_callbacks, "third@example.org", shop.event).status_code == 200


def test_refunded_and_other_events_orders_are_not_sent(
        client, shop, stripe_local, webhook_endpoint, make_public_photo,
        django_capture_on_commit_callbacks):
    order = buy(shop, stripe_local, webhook_endpoint, make_public_photo(shop.event), "buyer@example.org")
    refunds.refund(order, provider=stripe_local, amount=order.total)
    ask(client, django_capture_on_commit_callbacks, "buyer@example.org", shop.event)
    assert mail.outbox == []
    Order.objects.create(event=shop.event, email="pending@example.org", currency="EUR",
                         total=Decimal("9.00"), vat_rate=Decimal("20"), vat_amount=Decimal("1.50"))
    ask(client, django_capture_on_commit_callbacks, "pending@example.org", shop.event)
    assert mail.outbox == []


def test_the_form_says_what_is_wrong_and_preselects_the_event(client, shop):
    url = reverse("commerce:resend")
    page = client.get(url, {"event": shop.event.slug})
    assert page.status_code == 200 and page["Cache-Control"].startswith("max-age=0")
    assert f'<option value="{shop.event.slug}" selected>' in page.content.decode()
    response = client.post(url, {"email": "not an address", "event": "no-such-event"})
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"email", "event"}
    assert mail.outbox == []


def test_the_cart_links_to_the_page(client, shop):
    page = client.get(reverse("commerce:cart", kwargs={"slug": shop.event.slug})).content.decode()
    assert f'{reverse("commerce:resend")}?event={shop.event.slug}' in page
