"""Splitting money in whole cents: the parts always add up, in proportion, nothing lost."""

import random
from decimal import Decimal
from types import SimpleNamespace

import pytest

from commerce.models import DiscountCode
from commerce.pricing import allocate, discount_off, quote


def test_allocate_gives_every_cent_to_someone_in_proportion():
    assert allocate(Decimal("25.00"), {"paula": 1, "ana": 1, "bob": 1}) == {
        "paula": Decimal("8.34"), "ana": Decimal("8.33"), "bob": Decimal("8.33")}
    # The cent left goes to the largest remainder, not simply to the first key.
    assert allocate(Decimal("20.83"), {"paula": 1, "ana": 2}) == {
        "paula": Decimal("6.94"), "ana": Decimal("13.89")}
    assert allocate(Decimal("0.00"), {"a": 1, "b": 3}) == {"a": Decimal("0.00"), "b": Decimal("0.00")}
    assert allocate(Decimal("1.00"), {"a": 0, "b": 0}) == {"a": Decimal("0.50"), "b": Decimal("0.50")}
    assert allocate(Decimal("5.00"), {}) == {}
    with pytest.raises(ValueError):
        allocate(Decimal("-1.00"), {"a": 1})


def test_allocate_never_loses_or_makes_a_cent():
    chance = random.Random(15)
    for _ in range(2000):
        amount = Decimal(chance.randint(0, 100_000)) / 100
        weights = {key: Decimal(chance.randint(0, 5000)) / 100 for key in range(chance.randint(1, 9))}
        parts = allocate(amount, weights)
        assert sum(parts.values()) == amount
        assert all(part >= 0 and part == part.quantize(Decimal("0.01")) for part in parts.values())
        whole = sum(weights.values())
        if whole:  # each part within a cent of its exact share
            for key, part in parts.items():
                assert abs(part - amount * weights[key] / whole) < Decimal("0.01")


def test_discount_off_rounds_half_up_and_never_passes_the_subtotal():
    percent, fixed = DiscountCode.Kind.PERCENT, DiscountCode.Kind.FIXED
    assert discount_off(percent, Decimal("15"), Decimal("19.00")) == Decimal("2.85")
    assert discount_off(percent, Decimal("12.5"), Decimal("9.00")) == Decimal("1.13")  # 1.125
    assert discount_off(percent, Decimal("100"), Decimal("9.00")) == Decimal("9.00")
    assert discount_off(fixed, Decimal("5"), Decimal("9.00")) == Decimal("5.00")
    assert discount_off(fixed, Decimal("50"), Decimal("9.00")) == Decimal("9.00")
    assert discount_off(fixed, Decimal("5"), Decimal("0.00")) == Decimal("0.00")


def _shop(**fields):
    packs = [SimpleNamespace(quantity=q, price=Decimal(p)) for q, p in ((1, "9.00"), (3, "19.00"))]
    values = {"is_free": False, "bundle_price": Decimal("25.00"), "currency": "EUR",
              "vat_rate": Decimal("20"), "packs": SimpleNamespace(all=lambda: packs), **fields}
    return SimpleNamespace(**values)


def _code(kind, value, minimum=None):
    return SimpleNamespace(code="C", kind=kind, value=Decimal(value),
                           minimum_total=None if minimum is None else Decimal(minimum))


def test_the_discount_is_shared_over_the_lines_and_they_add_up_to_the_total():
    priced = quote(_shop(), [1, 2, 3], ["42"], lambda bib: [],
                   discount=_code(DiscountCode.Kind.PERCENT, "10"))
    assert (priced.subtotal, priced.discount, priced.total) == (
        Decimal("44.00"), Decimal("4.40"), Decimal("39.60"))
    assert sum(priced.item_prices.values()) == priced.total
    assert priced.item_prices["42"] == Decimal("22.50")  # 25.00 of 44.00
    assert priced.vat == Decimal("6.60")


def test_a_minimum_is_checked_against_the_price_before_the_discount():
    code = _code(DiscountCode.Kind.FIXED, "5", minimum="19.00")
    assert quote(_shop(), [1, 2, 3], [], lambda bib: [], discount=code).total == Decimal("14.00")
    refused = quote(_shop(), [1, 2], [], lambda bib: [], discount=code)
    assert refused.total == Decimal("18.00") and refused.discount_code is None
    assert refused.discount_refused


def test_a_free_shop_has_nothing_to_discount():
    priced = quote(_shop(is_free=True), [1], [], lambda bib: [],
                   discount=_code(DiscountCode.Kind.FIXED, "5"))
    assert priced.total == Decimal("0.00") and priced.discount == 0 and priced.discount_code is None
