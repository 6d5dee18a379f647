"""The photo's admin page: no public link to the private original, which staff download
through a checked view; one thumbnail; a readable sharpness."""

import re

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from events.tests.factories import EventFactory
from photos.tests.factories import PhotoFactory
from photos.tests.images import jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture
def photo():
    return PhotoFactory(original=ContentFile(jpeg(seed=3), name="3.jpg"),
                        original_name="IMG_0003.JPG", sharpness=926.927734375,
                        thumbnail=ContentFile(jpeg(seed=4), name="t.jpg"),
                        preview=ContentFile(jpeg(seed=5), name="p.jpg"))


def test_it_links_the_original_only_to_the_staff_download(admin_client, photo):
    html = admin_client.get(reverse("admin:photos_photo_change", args=[photo.pk])).content.decode()

    download = reverse("admin:photos_photo_original", args=[photo.pk])
    assert f'href="{download}"' in html
    # Nothing points into the private storage, whose files have no URL.
    assert photo.original.name not in html and "originals/" not in html
    assert photo.preview.url in html


def test_it_labels_the_thumbnail_once_and_rounds_the_sharpness(admin_client, photo):
    change = admin_client.get(reverse("admin:photos_photo_change", args=[photo.pk]),
                              HTTP_ACCEPT_LANGUAGE="en").content.decode()
    listing = admin_client.get(reverse("admin:photos_photo_changelist"),
                               HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert len(re.findall(r">\s*thumbnail\s*:?\s*<", change, re.I)) <= 1
    assert "926.927734375" not in change and "926.927734375" not in listing
    assert re.search(r'<td class="field-sharpness_score">927</td>', listing)
    assert re.search(r">\s*927\s*<", change)


def test_it_streams_the_original_to_the_event_staff(photo, client, named_people):
    people = named_people(photo.event)
    client.force_login(people["owner"])

    response = client.get(reverse("admin:photos_photo_original", args=[photo.pk]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == jpeg(seed=3)
    assert 'attachment; filename="IMG_0003.JPG"' in response["Content-Disposition"]


def test_it_hides_the_original_from_staff_of_another_event(photo, client, named_people):
    other_event = EventFactory(slug="ailleurs")
    people = named_people(other_event)
    client.force_login(people["owner"])  # organiser of another event, staff all the same

    response = client.get(reverse("admin:photos_photo_original", args=[photo.pk]))

    assert response.status_code == 404


def test_it_sends_a_stranger_to_the_sign_in_page(photo, client):
    response = client.get(reverse("admin:photos_photo_original", args=[photo.pk]))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
