"""Sales reports: the figures to the cent, who may see them, the CSV, and a photographer's
own sales; one sale paid end to end through localstripe."""

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory
from commerce import reports, services
from commerce.models import DiscountCode, Order, OrderItem, Payment, Refund
from commerce.pricing import vat_of
from commerce.tests.conftest import add, deliver, pay_with_card, signed_event, start_checkout

pytestmark = pytest.mark.django_db


def _order(shop, lines, paid=True, **fields):
    """A paid order of ``lines`` ((photo, price) or (bib, price)), as checkout writes one."""
    total = sum((Decimal(price) for _what, price in lines), Decimal("0.00"))
    order = Order.objects.create(
        event=shop.event, email="r@example.org", currency="EUR", total=total,
        vat_rate=shop.vat_rate, vat_amount=vat_of(total, shop.vat_rate),
        state=Order.State.PAID if paid else Order.State.PENDING,
        paid_at=timezone.now() if paid else None, **fields)
    for what, price in lines:
        target = {"bib": what} if isinstance(what, str) else {"photo": what}
        OrderItem.objects.create(order=order, price=Decimal(price), **target)
    return order


@pytest.fixture
def sales(shop, named_people, make_public_photo):
    """Three photographers; a bundle of bib 7 with one photo of each, a single photo, a
    bundle of a bib with no photo yet, and an order never paid."""
    people = named_people(shop.event)
    paula = people["photographer"]
    ana = UserFactory(username="ana", role=User.Role.PHOTOGRAPHER, first_name="=HYPERLINK(\"x\")",
                      last_name="Martin")
    bob = UserFactory(username="bob", role=User.Role.PHOTOGRAPHER, first_name="Bob",
                      last_name="Durand; fils")
    shop.event.photographers.add(ana, bob)
    bundle_photos = []
    for photographer in (paula, ana, bob):
        photo = make_public_photo(shop.event, bib="7")
        photo.photographer = photographer
        photo.save(update_fields=["photographer"])
        bundle_photos.append(photo)
    single = make_public_photo(shop.event)
    single.photographer = ana
    single.save(update_fields=["photographer"])
    orders = {"bundle": _order(shop, [("7", "25.00")]), "single": _order(shop, [(single, "9.00")]),
              "no photo yet": _order(shop, [("99", "25.00")]),
              "unpaid": _order(shop, [(single, "9.00")], paid=False)}
    return {"people": people, "paula": paula, "ana": ana, "bob": bob, "orders": orders,
            "single": single, "bundle_photos": bundle_photos}


def test_the_report_counts_paid_orders_and_splits_bundles_to_the_cent(shop, sales):
    report = reports.sales_report(shop)
    assert (report.orders, report.photos_sold, report.bundles_sold, report.bundle_photos) == (3, 1, 2, 3)
    assert (report.revenue, report.vat, report.net) == (
        Decimal("59.00"), Decimal("9.84"), Decimal("49.16"))
    lines = {line.user_id: line for line in report.photographers}
    paula, ana, bob = (lines[sales[name].pk] for name in ("paula", "ana", "bob"))
    # The bundle's 25.00 (20.83 net of VAT) over three photographers, one photo each.
    assert (paula.revenue, paula.net, paula.bundle_photos, paula.photos_sold) == (
        Decimal("8.34"), Decimal("6.95"), 1, 0)
    assert (ana.revenue, ana.net, ana.photos_sold) == (Decimal("17.33"), Decimal("14.44"), 1)
    assert (bob.revenue, bob.net) == (Decimal("8.33"), Decimal("6.94"))
    # 70 % of each net, rounded half up; the organiser has the rest, to the cent.
    assert (paula.share, ana.share, bob.share) == (Decimal("4.87"), Decimal("10.11"), Decimal("4.86"))
    assert report.not_attributed.revenue == Decimal("25.00")
    assert report.not_attributed.net == Decimal("20.83")
    assert report.organiser_share == Decimal("29.32")
    assert report.photographers_share + report.organiser_share == report.net
    assert sum(line.revenue for line in [*report.photographers, report.not_attributed]) == report.revenue
    assert sum(line.net for line in [*report.photographers, report.not_attributed]) == report.net


def test_the_share_follows_the_shops_rate(shop, sales):
    shop.photographer_share = Decimal("50")
    shop.save()
    report = reports.sales_report(shop)
    assert report.of(sales["ana"]).share == Decimal("7.22")
    assert report.photographers_share + report.organiser_share == report.net


def test_refunded_amounts_come_off_every_figure(shop, sales):
    single = sales["orders"]["single"]
    bundle = sales["orders"]["bundle"]
    for order, amount in ((single, "9.00"), (bundle, "10.00")):
        payment = Payment.objects.create(order=order, provider="stripe", provider_reference=f"pi_{order.pk}",
                                         amount=order.total, currency=order.currency,
                                         state=Payment.State.SUCCEEDED)
        for state, reference in ((Refund.State.SUCCEEDED, "re_ok"), (Refund.State.FAILED, "re_failed")):
            # A failed refund gave nothing back: only the succeeded one counts.
            Refund.objects.create(order=order, payment=payment, amount=Decimal(amount),
                                  currency=order.currency, state=state,
                                  provider_reference=f"{reference}_{order.pk}")
    report = reports.sales_report(shop)
    assert report.refunded == Decimal("19.00") and report.revenue == Decimal("40.00")
    assert report.net == Decimal("12.50") + Decimal("0.00") + Decimal("20.83")
    ana = report.of(sales["ana"])
    assert ana.revenue == Decimal("5.00")  # a third of the 15.00 left of the bundle
    assert report.photographers_share + report.organiser_share == report.net


def test_a_photo_its_bundle_already_covered_is_not_sold_twice(shop, sales):
    covered = sales["orders"]["bundle"]
    OrderItem.objects.create(order=covered, photo=sales["bundle_photos"][1], price=Decimal("0.00"),
                             download_count=2)
    report = reports.sales_report(shop)
    assert report.photos_sold == 1 and report.photo_downloads == 2
    assert report.of(sales["ana"]).revenue == Decimal("17.33")


def _sell_bundles(shop, make_public_photo, photographers, count, first_bib):
    """``count`` paid bundles of bibs from ``first_bib`` on, each bib on one to three public
    photos taken by the photographers in turn."""
    for n in range(count):
        bib = str(first_bib + n)
        for k in range(1 + n % 3):
            photo = make_public_photo(shop.event, bib=bib)
            photo.photographer = photographers[(n + k) % len(photographers)]
            photo.save(update_fields=["photographer"])
        _order(shop, [(bib, "25.00")])


def test_the_report_finds_the_bundles_photos_in_the_same_queries_however_many_were_sold(
        shop, sales, make_public_photo, monkeypatch):
    with CaptureQueriesContext(connection) as two_bundles:
        reports.sales_report(shop)
    _sell_bundles(shop, make_public_photo, [sales["paula"], sales["ana"], sales["bob"]], 30,
                  first_bib=100)

    with CaptureQueriesContext(connection) as thirty_two_bundles:
        report = reports.sales_report(shop)
    # The same figures as searching each bundle's bib on its own.
    monkeypatch.setattr(services, "photos_of_bibs", lambda event, bibs: {
        bib: set(services.photos_of_bib(event, bib)) for bib in bibs})
    one_by_one = reports.sales_report(shop)

    assert len(thirty_two_bundles) == len(two_bundles)
    assert (report.bundles_sold, report.bundle_photos) == (32, 3 + 10 * (1 + 2 + 3))
    assert report == one_by_one


def test_discounts_are_reported_per_code(shop, sales):
    code = DiscountCode.objects.create(shop=shop, code="AMIS", kind=DiscountCode.Kind.PERCENT,
                                       value=Decimal("10"))
    _order(shop, [(sales["single"], "8.10")], discount_code=code, discount_amount=Decimal("0.90"))
    report = reports.sales_report(shop)
    assert report.discounts == Decimal("0.90")
    assert report.subtotal == Decimal("68.00") and report.revenue == Decimal("67.10")
    assert [(use.code, use.orders, use.amount) for use in report.codes] == [
        ("AMIS", 1, Decimal("0.90"))]


# --- The admin pages ----------------------------------------------------------------------


def _report_url(shop):
    return reverse("admin:commerce_shop_sales", args=[shop.pk])


@pytest.mark.parametrize(("who", "status"), [
    ("owner", 200), ("admin", 200), ("staff", 404), ("photographer", 404), ("outsider", 404),
    ("runner", 302), ("anonymous", 302)])
def test_only_the_events_organisers_and_admins_open_the_report(client, shop, sales, who, status):
    person = sales["people"][who]
    if person is not None:
        client.force_login(person)
    response = client.get(_report_url(shop))
    assert response.status_code == status
    if status == 302:
        assert "/login/" in response["Location"]
    assert client.get(_report_url(shop), {"format": "csv"}).status_code == status


def test_the_report_page_shows_the_figures_in_french(client, shop, sales):
    client.force_login(sales["people"]["owner"])
    page = client.get(_report_url(shop)).content.decode()
    assert "Rapport des ventes" in page
    assert "59,00 EUR" in page and "49,16 EUR" in page and "29,32 EUR" in page
    assert "Non attribué à un photographe" in page
    assert "Bob Durand; fils" in page and "4,86 EUR" in page
    # Reachable from the shop's and the event's admin pages.
    assert _report_url(shop) in client.get(
        reverse("admin:commerce_shop_change", args=[shop.pk])).content.decode()
    assert _report_url(shop) in client.get(
        reverse("admin:events_event_change", args=[shop.event.pk])).content.decode()
    assert _report_url(shop) in client.get(reverse("admin:commerce_shop_changelist")).content.decode()


def _csv_rows(response):
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    raw = response.content
    assert raw.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


def test_the_csv_opens_in_french_excel_and_cannot_run_a_formula(client, shop, sales):
    client.force_login(sales["people"]["owner"])
    rows = _csv_rows(client.get(_report_url(shop), {"format": "csv"}))
    by_label = {row[0]: row[1:] for row in rows if row}
    assert by_label["Chiffre d’affaires (TTC)"] == ["59,00"]
    assert by_label["Part de l’organisateur"] == ["29,32"]
    # A name that looks like a formula is text; one holding ";" stays one cell.
    assert by_label["'=HYPERLINK(\"x\") Martin"] == ["1", "1", "0", "17,33", "14,44", "70,00", "10,11"]
    assert by_label["Bob Durand; fils"][-1] == "4,86"
    assert by_label["Non attribué à un photographe"][3:5] == ["25,00", "20,83"]
    assert not any(cell[:1] in "=+-@" for row in rows for cell in row if cell)


def test_a_photographer_sees_only_their_own_sales(client, shop, sales):
    url = reverse("admin:commerce_shop_own_sales")
    client.force_login(sales["paula"])
    page = client.get(url)
    assert page.status_code == 200
    [(own_shop, line)] = page.context["sales"]
    assert own_shop == shop and (line.revenue, line.share) == (Decimal("8.34"), Decimal("4.87"))
    text = page.content.decode()
    assert "8,34 EUR" in text and "4,87 EUR" in text
    for someone_elses in ("Martin", "Durand", "17,33", "59,00", "Non attribué"):
        assert someone_elses not in text
    rows = _csv_rows(client.get(url, {"format": "csv"}))
    assert rows[1][:2] == ["paula-photographer", str(shop.event)]
    assert rows[1][-2:] == ["70,00", "4,87"] and len(rows) == 2
    # Someone with no photo sold sees that, and a runner is not let in.
    client.force_login(sales["people"]["outsider"])
    assert "Aucune de vos photos n’a encore été vendue." in client.get(url).content.decode()
    client.force_login(sales["people"]["runner"])
    assert client.get(url).status_code == 302


# --- End to end ---------------------------------------------------------------------------


def test_a_paid_bundle_with_a_code_shows_in_the_report_with_the_photographers_share(
        client, shop, stripe_local, webhook_endpoint, named_people, make_public_photo):
    people = named_people(shop.event)
    for _ in range(2):
        photo = make_public_photo(shop.event, bib="314")
        photo.photographer = people["photographer"]
        photo.save(update_fields=["photographer"])
    DiscountCode.objects.create(shop=shop, code="CLUB", kind=DiscountCode.Kind.FIXED,
                                value=Decimal("5"))
    add(client, shop.event, bib="314")
    client.post(reverse("commerce:discount", kwargs={"slug": shop.event.slug}), {"code": "club"})
    payment = start_checkout(client, shop.event).context["payment"]
    intent = pay_with_card(stripe_local, payment)
    body, signature = signed_event("payment_intent.succeeded", intent, "evt_report")
    assert deliver(client, webhook_endpoint, body, signature).status_code == 200

    client.force_login(people["owner"])
    report = client.get(_report_url(shop)).context["report"]
    assert (report.orders, report.bundles_sold, report.bundle_photos) == (1, 1, 2)
    assert (report.subtotal, report.discounts, report.revenue) == (
        Decimal("25.00"), Decimal("5.00"), Decimal("20.00"))
    [line] = report.photographers
    # 20.00 VAT included is 16.67 net of 20 % VAT; 70 % of it.
    assert (line.user_id, line.net, line.share) == (people["photographer"].pk, Decimal("16.67"),
                                                    Decimal("11.67"))
    assert report.organiser_share == Decimal("5.00")
