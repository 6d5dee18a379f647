"""A 500-photo order's ZIP streams through the real download view with bounded memory,
and is a valid archive: every name, every CRC."""

import hashlib
import os
import tracemalloc
import zipfile
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from commerce.downloads import WHOLE_ORDER, link
from commerce.models import Order, OrderItem, Payment
from photos.models import Photo

pytestmark = pytest.mark.django_db

PHOTOS = 500
PHOTO_BYTES = 128 * 1024  # 62.5 MiB in all: far more than the bound below


def test_a_500_photo_zip_streams_with_bounded_memory(client, shop, settings, tmp_path):
    originals = Path(settings.PRIVATE_MEDIA_ROOT) / "originals" / "zip"
    originals.mkdir(parents=True)
    expected = {}
    photos = []
    for number in range(PHOTOS):
        # Random bytes: stored as they are (ZIP_STORED), so the archive is as big as the photos.
        data = os.urandom(PHOTO_BYTES)
        (originals / f"{number}.jpg").write_bytes(data)
        photos.append(Photo(event=shop.event, original=f"originals/zip/{number}.jpg",
                            original_name=f"IMG_{number:04d}.JPG", state=Photo.State.READY,
                            content_hash=hashlib.sha256(data).hexdigest(), image_format="JPEG"))
        expected[f"IMG_{number:04d}.JPG"] = zlib.crc32(data)
    photos = Photo.objects.bulk_create(photos)
    order = Order.objects.create(event=shop.event, email="big@example.org", currency="EUR",
                                 total=Decimal("450.00"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("75.00"), state=Order.State.PAID)
    Payment.objects.create(order=order, amount=order.total, currency="EUR",
                           state=Payment.State.SUCCEEDED, provider_reference="pi_zip_test")
    OrderItem.objects.bulk_create([OrderItem(order=order, photo=photo, price=Decimal("0.90"))
                                   for photo in photos])
    url = link(order, WHOLE_ORDER)
    archive_path = tmp_path / "order.zip"

    tracemalloc.start()
    try:
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/zip"
        assert response.streaming
        with archive_path.open("wb") as archive:
            for chunk in response.streaming_content:
                archive.write(chunk)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    total = PHOTOS * PHOTO_BYTES
    size = archive_path.stat().st_size
    assert size > total
    # Bounded: a few read buffers and the order's rows, never the archive or its photos.
    print(f"ZIP of {PHOTOS} photos, {size / 2**20:.1f} MiB: peak traced memory "
          f"{peak / 2**20:.2f} MiB")
    assert peak < 8 * 2**20, peak
    with zipfile.ZipFile(archive_path) as opened:
        assert opened.testzip() is None  # every member's CRC checked against its bytes
        found = {info.filename.split("-", 1)[1]: info.CRC for info in opened.infolist()}
        names = [info.filename for info in opened.infolist()]
    assert found == expected
    assert names == [f"{photo.pk}-{photo.original_name}" for photo in sorted(photos, key=lambda p: p.pk)]
    assert set(OrderItem.objects.filter(order=order).values_list("download_count", flat=True)) == {1}
