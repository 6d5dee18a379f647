"""Sales reports per event, for its organisers and for each photographer, and their CSV.

Everything is computed from the orders' state, never stored: an order counts once it
was paid (``paid_at``), less what was refunded of it (``commerce.refunds``).

How money is attributed, in whole cents that always add up:

1. An order's collected amount (total less refunds, VAT included) and its part net of
   VAT are each shared out over the order's lines in proportion to the line prices
   (``pricing.allocate``). Line prices are already net of the discount code.
2. A photo bought on its own goes to the photo's photographer.
3. An "all my photos" bundle goes to the photographers whose photos it delivers, in
   proportion to how many of them each has: the photos the bundle gives *today*,
   since it includes photos found after the purchase. So the split of an old bundle
   can move when photos are linked later; the totals never move. A bundle that gives
   no photo yet, and photos without a photographer, are "not attributed".
4. Each photographer's share is the shop's ``photographer_share`` of their revenue net
   of VAT (VAT is owed to the state), rounded to the cent; the organiser's part is
   the rest of the net revenue, so the shares and the organiser's part sum to it
   exactly. The current rate applies to every sale in the report.
"""

import csv
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.http import HttpResponse
from django.utils import formats
from django.utils.translation import gettext as _

from commerce.models import ZERO, DiscountCode, Order, Shop
from commerce.pricing import CENT, allocate, vat_of
from commerce.refunds import refunded_amounts
from photos.models import Photo

NOT_ATTRIBUTED = None  # the key of the revenue no photographer's photo accounts for


@dataclass
class PhotographerSales:
    """One photographer's part of an event's sales (or the part no photographer has)."""

    user_id: int | None
    name: str
    photos_sold: int = 0       # their photos bought one by one
    bundle_photos: int = 0     # their photos in the bundles sold
    downloads: int = 0         # downloads of their photos bought one by one
    revenue: Decimal = ZERO    # VAT included, after discounts and refunds
    net: Decimal = ZERO        # the same, net of VAT
    share: Decimal = ZERO      # what they earn: the shop's rate of ``net``

    @property
    def vat(self) -> Decimal:
        return self.revenue - self.net


@dataclass
class CodeUse:
    code: str
    kind: str                  # as the admin's language names it
    kind_is_percent: bool
    value: Decimal
    orders: int = 0
    amount: Decimal = ZERO     # taken off the buyers' totals, VAT included


@dataclass
class SalesReport:
    shop: Shop
    currency: str
    share_rate: Decimal
    orders: int = 0
    free_orders: int = 0
    orders_downloaded: int = 0
    subtotal: Decimal = ZERO   # before discounts, VAT included
    discounts: Decimal = ZERO
    refunded: Decimal = ZERO
    revenue: Decimal = ZERO    # collected: subtotal - discounts - refunds, VAT included
    net: Decimal = ZERO
    photos_sold: int = 0
    bundles_sold: int = 0
    bundle_photos: int = 0
    photo_downloads: int = 0
    bundle_downloads: int = 0
    photographers: list[PhotographerSales] = field(default_factory=list)
    not_attributed: PhotographerSales | None = None
    codes: list[CodeUse] = field(default_factory=list)

    @property
    def vat(self) -> Decimal:
        return self.revenue - self.net

    @property
    def photographers_share(self) -> Decimal:
        return sum((line.share for line in self.photographers), ZERO)

    @property
    def organiser_share(self) -> Decimal:
        return self.net - self.photographers_share

    def of(self, user) -> PhotographerSales:
        """``user``'s line (zeros when none of their photos sold)."""
        found = next((line for line in self.photographers if line.user_id == user.pk), None)
        return found or PhotographerSales(user.pk, _display_name(user))


def _display_name(user) -> str:
    return user.get_full_name() or user.username


class _BundleContents:
    """What each bundle bib of a report gives today, and how many of those photos each
    photographer took: found for all the report's bibs at once, in a fixed number of
    queries however many bundles were sold."""

    def __init__(self, event, bibs):
        from commerce.services import photos_of_bibs

        self.ids: dict[str, set[int]] = photos_of_bibs(event, set(bibs))
        photographer_of = dict(Photo.objects.filter(pk__in=set().union(*self.ids.values()))
                               .values_list("pk", "photographer_id"))
        self.counts: dict[str, dict[int | None, int]] = {
            bib: dict(Counter(photographer_of[photo_id] for photo_id in ids))
            for bib, ids in self.ids.items()}

    def photo_ids(self, bib: str) -> set[int]:
        return self.ids[bib]

    def photographers_of(self, bib: str) -> dict[int | None, int]:
        return self.counts[bib]


def sales_report(shop: Shop) -> SalesReport:
    """The sales of ``shop``'s event (see the module's note for how money is attributed)."""
    event = shop.event
    report = SalesReport(shop=shop, currency=shop.currency, share_rate=shop.photographer_share)
    lines: dict[int | None, PhotographerSales] = {}
    codes: dict[int, CodeUse] = {}

    def line(user_id) -> PhotographerSales:
        if user_id not in lines:
            lines[user_id] = PhotographerSales(user_id, "")
        return lines[user_id]

    paid = Order.objects.filter(event=event, paid_at__isnull=False)
    refunded_of = refunded_amounts(paid)
    orders = list(paid.select_related("discount_code").prefetch_related("items__photo")
                  .order_by("pk"))
    bundles = _BundleContents(event, {item.bib for order in orders for item in order.items.all()
                                      if item.bib})
    for order in orders:
        items = list(order.items.all())
        refunded = min(refunded_of.get(order.pk, ZERO), order.total)
        collected = order.total - refunded
        net = collected - vat_of(collected, order.vat_rate)
        report.orders += 1
        report.free_orders += order.total == 0
        report.subtotal += order.subtotal
        report.discounts += order.discount_amount
        report.refunded += refunded
        report.revenue += collected
        report.net += net
        if order.discount_code is not None:
            code = order.discount_code
            use = codes.setdefault(code.pk, CodeUse(
                code.code, code.get_kind_display(), code.kind == DiscountCode.Kind.PERCENT,
                code.value))
            use.orders += 1
            use.amount += order.discount_amount
        if any(item.download_count for item in items):
            report.orders_downloaded += 1

        weights = {item.pk: item.price for item in items}
        revenue_of, net_of = allocate(collected, weights), allocate(net, weights)
        bundle_bibs = [item.bib for item in items if item.bib]
        in_bundles: set[int] = set()
        for bib in bundle_bibs:
            in_bundles |= bundles.photo_ids(bib)
        for item in items:
            if item.bib:
                report.bundles_sold += 1
                report.bundle_downloads += item.download_count
                counts = bundles.photographers_of(item.bib)
                report.bundle_photos += sum(counts.values())
                _credit_bundle(line, counts, revenue_of[item.pk], net_of[item.pk])
            elif item.photo_id in in_bundles and not item.price:
                # A cart photo its bundle already covered: the bundle's photographers have it.
                report.photo_downloads += item.download_count
            else:
                photographer = line(item.photo.photographer_id if item.photo else None)
                photographer.photos_sold += 1
                photographer.downloads += item.download_count
                photographer.revenue += revenue_of[item.pk]
                photographer.net += net_of[item.pk]
                report.photos_sold += 1
                report.photo_downloads += item.download_count

    _name_and_share(report, lines)
    report.codes = sorted(codes.values(), key=lambda use: use.code)
    return report


def _credit_bundle(line, counts: dict, revenue: Decimal, net: Decimal) -> None:
    if not counts:  # no photo of this bib yet
        target = line(NOT_ATTRIBUTED)
        target.revenue += revenue
        target.net += net
        return
    keys = sorted(counts, key=lambda key: (key is None, key or 0))
    weights = {key: counts[key] for key in keys}
    for key, part in allocate(revenue, weights).items():
        line(key).revenue += part
    for key, part in allocate(net, weights).items():
        target = line(key)
        target.net += part
        target.bundle_photos += counts[key]


def _name_and_share(report: SalesReport, lines: dict) -> None:
    from accounts.models import User

    users = User.objects.in_bulk([key for key in lines if key is not None])
    for key, entry in lines.items():
        if key is None:
            entry.name = _("Not attributed to a photographer")
            report.not_attributed = entry
            continue
        entry.name = _display_name(users[key])
        entry.share = (entry.net * report.share_rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
        report.photographers.append(entry)
    report.photographers.sort(key=lambda entry: (-entry.revenue, entry.name.lower()))


def photographer_sales(user) -> list[tuple[Shop, PhotographerSales]]:
    """``user``'s own part of every event that sold a photo of theirs, newest event first.

    Figures come from the event's whole report, so they match the organiser's to the cent;
    nothing about other photographers' sales leaves this function.
    """
    event_ids = Photo.objects.filter(photographer=user).values("event_id")
    shops = (Shop.objects.filter(event_id__in=event_ids,
                                 event__orders__paid_at__isnull=False)
             .select_related("event").distinct().order_by("-event__date", "event__name"))
    result = []
    for shop in shops:
        own = sales_report(shop).of(user)
        if own.photos_sold or own.bundle_photos or own.revenue:
            result.append((shop, own))
    return result


def totals_by_currency(sales) -> list[dict]:
    """A photographer's totals over their events, one per currency (never added across)."""
    totals: dict[str, dict] = {}
    for shop, line in sales:
        total = totals.setdefault(shop.currency, {
            "currency": shop.currency, "photos_sold": 0, "bundle_photos": 0, "downloads": 0,
            "revenue": ZERO, "net": ZERO, "share": ZERO})
        for name in ("photos_sold", "bundle_photos", "downloads", "revenue", "net", "share"):
            total[name] += getattr(line, name)
    return list(totals.values())


# --- CSV --------------------------------------------------------------------------------


def safe_cell(value) -> str:
    """A cell a spreadsheet shows as text: one starting a formula (= + - @, or a tab or
    carriage return that some spreadsheets skip first) gets a leading apostrophe."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def money(value: Decimal) -> str:
    """An amount as the admin's language writes it (French: 1234,50), without grouping,
    so a spreadsheet in that language reads it as a number."""
    return formats.number_format(value, 2, use_l10n=True, force_grouping=False)


def csv_response(filename: str, rows) -> HttpResponse:
    """UTF-8 with a byte-order mark (Excel then reads the accents right), ``;`` between
    cells (what French Excel expects), quoted where a cell holds ``;``, a quote or a
    line break, and every cell made safe from formula injection."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.write("\ufeff")
    out = csv.writer(response, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    for row in rows:
        out.writerow([safe_cell(cell) for cell in row])
    return response


def _photographer_header():
    return [_("Photographer"), _("Photos sold one by one"), _("Photos in bundles"),
            _("Downloads"), _("Revenue (VAT incl.)"), _("Revenue (excl. VAT)"), _("Share (%)"),
            _("Photographer's share")]


def _photographer_row(line: PhotographerSales, rate) -> list:
    return [line.name, line.photos_sold, line.bundle_photos, line.downloads, money(line.revenue),
            money(line.net), money(rate) if line.user_id is not None else "",
            money(line.share) if line.user_id is not None else ""]


def report_rows(report: SalesReport):
    currency = report.currency
    yield [_("Sales report"), str(report.shop.event), currency]
    yield []
    for label, value in (
            (_("Paid orders"), report.orders),
            (_("of which free downloads"), report.free_orders),
            (_("Orders downloaded at least once"), report.orders_downloaded),
            (_("Photos sold one by one"), report.photos_sold),
            (_("Bundles sold"), report.bundles_sold),
            (_("Photos in bundles"), report.bundle_photos),
            (_("Downloads of photos"), report.photo_downloads),
            (_("Downloads from bundles"), report.bundle_downloads),
            (_("Sales before discounts (VAT incl.)"), money(report.subtotal)),
            (_("Discounts"), money(report.discounts)),
            (_("Refunds"), money(report.refunded)),
            (_("Revenue (VAT incl.)"), money(report.revenue)),
            (_("VAT"), money(report.vat)),
            (_("Revenue (excl. VAT)"), money(report.net)),
            (_("Photographers' share"), money(report.photographers_share)),
            (_("Organiser's share"), money(report.organiser_share))):
        yield [label, value]
    yield []
    yield _photographer_header()
    for line in report.photographers:
        yield _photographer_row(line, report.share_rate)
    if report.not_attributed is not None:
        yield _photographer_row(report.not_attributed, report.share_rate)
    if report.codes:
        yield []
        yield [_("Discount code"), _("Kind"), _("Value"), _("Paid orders"), _("Discounts")]
        for use in report.codes:
            value = f"{money(use.value)} %" if use.kind_is_percent else money(use.value)
            yield [use.code, use.kind, value, use.orders, money(use.amount)]


def own_rows(user, sales):
    yield _photographer_header()[:1] + [_("Event"), _("Currency")] + _photographer_header()[1:]
    for shop, line in sales:
        row = _photographer_row(line, shop.photographer_share)
        yield [row[0], str(shop.event), shop.currency, *row[1:]]
