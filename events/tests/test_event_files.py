"""An event's logo and watermark logo leave the storage with the event, and with the row's
reference to them (replaced or cleared); only once the change commits."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from PIL import Image

from events.models import Event
from events.tests.factories import EventFactory
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


def png(colour=(10, 120, 60, 255)) -> bytes:
    output = io.BytesIO()
    Image.new("RGBA", (40, 20), colour).save(output, "PNG")
    return output.getvalue()


def branded_event(**kwargs) -> Event:
    event = EventFactory(**kwargs)
    event.logo.save("club.png", ContentFile(png()), save=False)
    event.watermark_logo.save("mark.png", ContentFile(png()), save=False)
    event.save()
    return event


def stored(*names: str) -> list[bool]:
    return [storages["private"].exists(name) for name in names]


def test_deleting_an_event_removes_its_logos_once_the_deletion_commits(
        django_capture_on_commit_callbacks):
    event = branded_event()
    names = (event.logo.name, event.watermark_logo.name)
    assert stored(*names) == [True, True]

    with django_capture_on_commit_callbacks(execute=True):
        Event.objects.get(pk=event.pk).delete()

    assert stored(*names) == [False, False]


def test_an_event_deleted_in_the_admin_leaves_neither_logo_nor_photo_files(
        admin_client, django_capture_on_commit_callbacks):
    event = branded_event()
    photo = PhotoFactory(event=event, with_original=True)
    names = (event.logo.name, event.watermark_logo.name)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:events_event_delete", args=[event.pk]),
                                     {"post": "yes"})

    assert response.status_code == 302
    assert not Event.objects.filter(pk=event.pk).exists()
    assert stored(*names) == [False, False]
    assert not photo.original.storage.exists(photo.original.name)


def test_a_rolled_back_event_deletion_keeps_its_logos(django_capture_on_commit_callbacks):
    event = branded_event()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            Event.objects.get(pk=event.pk).delete()
            raise RuntimeError("the deletion is rolled back")

    assert callbacks == []
    assert stored(event.logo.name, event.watermark_logo.name) == [True, True]


def test_a_replaced_logo_is_removed_and_the_new_one_kept(django_capture_on_commit_callbacks):
    event = branded_event()
    old_logo, old_mark = event.logo.name, event.watermark_logo.name

    with django_capture_on_commit_callbacks(execute=True):
        event.logo = SimpleUploadedFile("club.png", png((200, 0, 0, 255)), "image/png")
        event.save()

    assert event.logo.name != old_logo
    assert stored(old_logo, event.logo.name, old_mark) == [False, True, True]


def test_a_logo_cleared_in_the_admin_is_removed(admin_client, django_capture_on_commit_callbacks):
    event = branded_event(name="Semi de Lyon")
    url = reverse("admin:events_event_change", args=[event.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items()
            if name in form.fields and value is not None and name not in ("logo", "watermark_logo")}
    data.update({"date": event.date.isoformat(), "watermark_logo-clear": "on",
                 "races-TOTAL_FORMS": 0, "races-INITIAL_FORMS": 0,
                 "start_list-TOTAL_FORMS": 0, "start_list-INITIAL_FORMS": 0})
    old_mark = event.watermark_logo.name

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    event.refresh_from_db()
    assert not event.watermark_logo
    assert stored(old_mark, event.logo.name) == [False, True]


def test_a_rolled_back_replacement_keeps_the_old_logo(django_capture_on_commit_callbacks):
    event = branded_event()
    old_logo = event.logo.name

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            event.logo = SimpleUploadedFile("new.png", png(), "image/png")
            event.save()
            raise RuntimeError("the save is rolled back")

    assert callbacks == []
    assert stored(old_logo) == [True]


def test_saving_other_fields_keeps_the_logos(django_capture_on_commit_callbacks):
    event = branded_event()

    with django_capture_on_commit_callbacks(execute=True):
        event.name = "Renamed"
        event.save()
        Event.objects.get(pk=event.pk).save(update_fields=["name"])

    assert stored(event.logo.name, event.watermark_logo.name) == [True, True]


def test_a_logo_uploaded_again_under_the_same_name_gets_a_name_of_its_own(
        django_capture_on_commit_callbacks):
    # The public logo's URL and the watermark's cache are keyed by the stored name: a
    # deleted logo's name must never come back for the next upload.
    event = branded_event()
    first = event.watermark_logo.name

    with django_capture_on_commit_callbacks(execute=True):
        event.watermark_logo = SimpleUploadedFile("mark.png", png((0, 0, 200, 255)), "image/png")
        event.save()

    assert not storages["private"].exists(first)
    assert event.watermark_logo.name != first
    assert event.watermark_logo.name.startswith("watermarks/mark-")
    assert event.watermark_logo.name.endswith(".png")
