import pytest

from photos.models import Photo, PhotoStep
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


def test_it_lists_photos_with_their_state_for_an_admin(admin_client):
    PhotoFactory(original_name="IMG_4242.JPG", state=Photo.State.FAILED,
                 failure_reason="damaged file")

    response = admin_client.get("/admin/photos/photo/?state__exact=failed")

    assert response.status_code == 200
    assert "IMG_4242.JPG" in response.content.decode()


def test_it_shows_a_photos_processing_steps(admin_client):
    photo = PhotoFactory()
    PhotoStep.objects.create(photo=photo, step="derivatives", status=PhotoStep.Status.FAILED,
                             attempts=2, error="OSError: disk full")

    response = admin_client.get(f"/admin/photos/photo/{photo.pk}/change/")

    assert response.status_code == 200
    assert "OSError: disk full" in response.content.decode()


def test_it_reprocesses_failed_photos_from_the_admin(admin_client, settings,
                                                     django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    photo = PhotoFactory(with_original=True, state=Photo.State.FAILED, failure_reason="worker lost")
    PhotoStep.objects.create(photo=photo, step="derivatives", status=PhotoStep.Status.FAILED,
                             attempts=1, error="worker lost")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/photos/photo/", {
            "action": "reprocess", "_selected_action": [photo.pk]}, follow=True,
            HTTP_ACCEPT_LANGUAGE="en")

    photo.refresh_from_db()
    assert response.status_code == 200
    assert photo.state == Photo.State.READY
    assert photo.preview and photo.thumbnail
    assert "1 photo queued" in response.content.decode()


def test_it_refuses_the_photo_admin_to_a_non_staff_user(client, django_user_model):
    user = django_user_model.objects.create_user("runner", password="pw-12345-long")
    client.force_login(user)

    response = client.get("/admin/photos/photo/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
