"""STORAGE_BACKEND=s3 against a real S3 server (moto's, started by conftest.py): an upload
through the staff upload page ends as a private original and web copy and public
derivatives in the bucket; public objects are readable by anyone, private ones only
through signed URLs that expire; a paid order's downloads come from the bucket; deleting
a photo or an event removes its objects."""

import datetime
import io
import zipfile
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import User
from accounts.tests.factories import UserFactory
from commerce.downloads import WHOLE_ORDER, link
from commerce.models import Order, OrderItem
from events.tests.factories import EventFactory
from photos.models import Photo
from photos.tests.images import encoded, picture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("s3_storage", "derivatives_only")]

PHOTO = encoded(picture((640, 480), seed=3))


@pytest.fixture
def event():
    return EventFactory(name="Trail du Bucket", slug="trail-du-bucket")


@pytest.fixture
def uploaded(event, settings, django_capture_on_commit_callbacks):
    """A photo sent through the staff upload page and processed (eager tasks)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    photographer = UserFactory(username="paula-photographer", role=User.Role.PHOTOGRAPHER)
    event.photographers.add(photographer)
    client = Client()
    client.force_login(photographer)
    with translation.override("en"):
        url = reverse("photos:upload_file", kwargs={"slug": event.slug})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"file": ContentFile(PHOTO, name="IMG_0042.JPG")})
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["status"] == "accepted"
    return Photo.objects.get(event=event)


def keys(s3_client, bucket) -> set[str]:
    listing = s3_client.list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_an_upload_ends_in_the_bucket_originals_private_derivatives_public(
        uploaded, s3_client, bucket, settings):
    assert uploaded.state == Photo.State.READY
    assert keys(s3_client, bucket) == {
        f"private/{uploaded.original.name}", f"private/{uploaded.web.name}",
        f"public/{uploaded.preview.name}", f"public/{uploaded.thumbnail.name}"}
    stored = s3_client.get_object(Bucket=bucket, Key=f"private/{uploaded.original.name}")
    assert stored["Body"].read() == PHOTO

    preview = s3_client.head_object(Bucket=bucket, Key=f"public/{uploaded.preview.name}")
    assert preview["CacheControl"] == settings.MEDIA_CACHE_CONTROL
    assert preview["ContentType"] == "image/jpeg"
    everyone = "http://acs.amazonaws.com/groups/global/AllUsers"

    def readers(key):
        grants = s3_client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        return {grant["Grantee"].get("URI") for grant in grants if grant["Permission"] == "READ"}

    assert everyone in readers(f"public/{uploaded.thumbnail.name}")
    assert everyone not in readers(f"private/{uploaded.original.name}")
    assert everyone not in readers(f"private/{uploaded.web.name}")


def test_public_urls_are_plain_and_private_ones_need_their_signature(uploaded):
    preview = requests.get(uploaded.preview.url, timeout=10)
    assert "X-Amz-Signature" not in uploaded.preview.url
    assert preview.status_code == 200
    assert preview.content == uploaded.preview.open("rb").read()

    signed = uploaded.original.url
    assert "X-Amz-Signature" in signed
    answer = requests.get(signed, timeout=10)
    assert answer.status_code == 200 and answer.content == PHOTO
    # The same object without the signature: refused, for the original and the web copy.
    for field in (uploaded.original, uploaded.web):
        unsigned = field.url.split("?", 1)[0]
        assert requests.get(unsigned, timeout=10).status_code == 403


def test_signed_urls_last_the_configured_minutes(uploaded, s3_storage):
    # moto serves a signed URL without checking its expiry (AWS and MinIO do): what is
    # checked here is the validity the URL itself is signed with.
    query = parse_qs(urlsplit(uploaded.original.url).query)
    assert query["X-Amz-Expires"] == ["600"]
    signed_at = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC)
    assert abs((timezone.now() - signed_at).total_seconds()) < 60
    s3_storage["private"].querystring_expire = 120
    assert parse_qs(urlsplit(uploaded.original.url).query)["X-Amz-Expires"] == ["120"]


@pytest.fixture
def paid_order(uploaded, event):
    order = Order.objects.create(event=event, email="rita@example.org", currency="EUR",
                                 total=Decimal("9.00"), vat_rate=Decimal("20"),
                                 vat_amount=Decimal("1.50"), state=Order.State.PAID,
                                 paid_at=timezone.now())
    OrderItem.objects.create(order=order, photo=uploaded, price=Decimal("9.00"))
    return order


def test_a_paid_download_is_handed_to_the_bucket_through_a_signed_url(client, paid_order, uploaded):
    response = client.get(link(paid_order, uploaded.pk))
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(uploaded.original.storage.endpoint_url)
    assert "X-Amz-Signature" in location
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == PHOTO
    assert fetched.headers["Content-Disposition"] == 'attachment; filename="IMG_0042.JPG"'
    assert fetched.headers["Cache-Control"] == "private, no-store"
    assert OrderItem.objects.get(order=paid_order).download_count == 1


def test_the_orders_zip_streams_the_originals_from_the_bucket(client, paid_order, uploaded):
    response = client.get(link(paid_order, WHOLE_ORDER))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == [f"{uploaded.pk}-IMG_0042.JPG"]
    assert archive.read(archive.namelist()[0]) == PHOTO


def test_deleting_a_photo_removes_its_objects(uploaded, s3_client, bucket,
                                              django_capture_on_commit_callbacks):
    assert len(keys(s3_client, bucket)) == 4
    with django_capture_on_commit_callbacks(execute=True):
        uploaded.delete()
    assert keys(s3_client, bucket) == set()


def test_a_rolled_back_deletion_keeps_the_objects(uploaded, s3_client, bucket,
                                                  django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            Photo.objects.get(pk=uploaded.pk).delete()
            raise RuntimeError("the deletion is rolled back")
    assert callbacks == []
    assert len(keys(s3_client, bucket)) == 4


def test_deleting_an_event_removes_every_object_of_its_photos(uploaded, event, s3_client, bucket,
                                                               django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event.delete()
    assert keys(s3_client, bucket) == set()
