"""What a cart costs: the cheapest way to cover its photos with the event's price ladder,
plus its "all my photos" bundles, less a discount code, and whether a bundle would be
cheaper.

Pure functions of the shop's prices and the cart's contents; the server is the only
place a total is computed. Money is split in whole cents by ``allocate``, so the parts
of an amount always add up to it exactly (order lines, photographers' shares).
"""

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from commerce.models import ZERO, DiscountCode

CENT = Decimal("0.01")


def ladder_cost(packs: list[tuple[int, Decimal]], count: int) -> Decimal | None:
    """The cheapest price of at least ``count`` photos from ``(quantity, price)`` packs.

    A pack may be bought several times and may cover more photos than needed (5 for 25 €
    beats 4 × 9 €). None when the ladder has no pack at all.
    """
    if count <= 0:
        return ZERO
    if not packs:
        return None
    best: list[Decimal | None] = [ZERO] + [None] * count
    for n in range(1, count + 1):
        for quantity, price in packs:
            before = best[max(0, n - quantity)]
            if before is not None and (best[n] is None or before + price < best[n]):
                best[n] = before + price
    return best[count]


def allocate(amount: Decimal, weights: dict) -> dict:
    """``amount`` split over the keys of ``weights`` in proportion to their weights, in
    whole cents that add up to ``amount`` exactly.

    Each key gets the floor of its exact share; the cents left go one each to the keys
    with the largest remainders (ties: the earlier key). With no weight at all the
    amount is spread evenly (``spread``).
    """
    if not weights:
        return {}
    if amount < 0:
        raise ValueError("allocate() splits a positive amount")
    keys = list(weights)
    cents = int((amount / CENT).to_integral_value())
    whole = sum(Fraction(weights[key]) for key in keys)
    if whole <= 0:
        return spread(amount, keys)
    exact = [cents * Fraction(weights[key]) / whole for key in keys]
    parts = [int(share) for share in exact]  # floor: shares are not negative
    by_remainder = sorted(range(len(keys)), key=lambda index: (parts[index] - exact[index], index))
    for index in by_remainder[:cents - sum(parts)]:
        parts[index] += 1
    return {key: part * CENT for key, part in zip(keys, parts, strict=True)}


def discount_off(kind: str, value: Decimal, subtotal: Decimal) -> Decimal:
    """What a discount of ``kind`` and ``value`` takes off ``subtotal`` (never more than it).

    A percentage is rounded to the cent, half up; a fixed amount is in the shop's currency.
    """
    if subtotal <= 0:
        return ZERO
    if kind == DiscountCode.Kind.PERCENT:
        off = (subtotal * value / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        off = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return min(off, subtotal)


def vat_of(total: Decimal, rate: Decimal) -> Decimal:
    """The VAT contained in a VAT-inclusive ``total``."""
    return (total - total / (1 + rate / 100)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class BundleOffer:
    bib: str
    price: Decimal
    saving: Decimal
    photo_count: int


@dataclass
class Quote:
    currency: str
    total: Decimal
    vat_rate: Decimal
    vat: Decimal
    photo_ids: list[int]          # photos charged through the ladder
    covered_ids: list[int]        # photos in the cart already covered by a bundle
    bibs: list[str]
    photos_cost: Decimal
    bundle_price: Decimal | None
    available: bool = True        # False: the shop sells nothing the cart holds
    offers: list[BundleOffer] = field(default_factory=list)
    item_prices: dict = field(default_factory=dict)  # photo id or bib -> share of the total
    subtotal: Decimal = ZERO      # before the discount code
    discount: Decimal = ZERO      # taken off the subtotal
    discount_code: DiscountCode | None = None  # the code applied (None: none, or refused)
    discount_refused: str = ""    # why the cart's code does not apply to this cart


def shop_packs(shop) -> list[tuple[int, Decimal]]:
    return [(pack.quantity, pack.price) for pack in shop.packs.all()]


def spread(amount: Decimal, keys: list) -> dict:
    """``amount`` shared out over ``keys`` in cents, the remainder on the first ones."""
    if not keys:
        return {}
    cents = int((amount / CENT).to_integral_value())
    share, extra = divmod(cents, len(keys))
    return {key: (share + (1 if index < extra else 0)) * CENT for index, key in enumerate(keys)}


def quote(shop, photo_ids: list[int], bibs: list[str], photos_of_bib,
          discount: DiscountCode | None = None) -> Quote:
    """The price of photos ``photo_ids`` plus bundles for ``bibs``, less ``discount``.

    ``photos_of_bib(bib)`` gives the ids of the photos a bundle covers today; a cart
    photo covered by one of its bundles costs nothing more. ``discount`` is a code whose
    dates and uses the caller has checked (``commerce.discounts``); its minimum is
    checked here, against the subtotal. The discount is shared out over the items in
    proportion to their prices, so ``item_prices`` always add up to ``total``.
    """
    packs = shop_packs(shop)
    covered: set[int] = set()
    for bib in bibs:
        covered |= set(photos_of_bib(bib))
    charged = [pk for pk in photo_ids if pk not in covered]
    if shop.is_free:
        photos_cost, bundles_cost, available = ZERO, ZERO, True
    else:
        cost = ladder_cost(packs, len(charged))
        available = (cost is not None) and (not bibs or shop.bundle_price is not None)
        photos_cost = cost if cost is not None else ZERO
        bundles_cost = (shop.bundle_price or ZERO) * len(bibs)
    subtotal = photos_cost + bundles_cost
    off, refused = ZERO, ""
    if shop.is_free:
        discount = None  # nothing to take off
    if discount is not None:
        if discount.minimum_total is not None and subtotal < discount.minimum_total:
            from commerce.discounts import below_minimum

            refused = below_minimum(discount, shop.currency)
        else:
            off = discount_off(discount.kind, discount.value, subtotal)
    total = subtotal - off
    result = Quote(currency=shop.currency, total=total, vat_rate=shop.vat_rate,
                   vat=vat_of(total, shop.vat_rate), photo_ids=charged,
                   covered_ids=[pk for pk in photo_ids if pk in covered], bibs=list(bibs),
                   photos_cost=photos_cost, bundle_price=shop.bundle_price, available=available,
                   subtotal=subtotal, discount=off,
                   discount_code=discount if discount is not None and not refused else None,
                   discount_refused=refused)
    undiscounted = {**spread(photos_cost, charged),
                    **{bib: shop.bundle_price or ZERO for bib in bibs}}
    result.item_prices = allocate(total, undiscounted) if off else undiscounted
    return result


def bundle_offers(shop, current: Quote, bibs_of_photos: dict[int, list[str]], photos_of_bib):
    """Bundles that would make the cart cheaper: for each bib seen on a charged photo,
    the bundle plus the ladder for the photos it would not cover, against today's price."""
    if shop.is_free or shop.bundle_price is None:
        return []
    packs = shop_packs(shop)
    candidates = sorted({bib for pk in current.photo_ids for bib in bibs_of_photos.get(pk, [])}
                        - set(current.bibs))
    offers = []
    for bib in candidates:
        in_bundle = set(photos_of_bib(bib))
        rest = [pk for pk in current.photo_ids if pk not in in_bundle]
        alternative = shop.bundle_price + (ladder_cost(packs, len(rest)) or ZERO)
        if alternative < current.photos_cost:
            offers.append(BundleOffer(bib=bib, price=shop.bundle_price,
                                      saving=current.photos_cost - alternative,
                                      photo_count=len(in_bundle)))
    return sorted(offers, key=lambda offer: -offer.saving)
