"""Public derivatives are served (SERVE_MEDIA: `make run`), and nothing else from any storage.

Production serves the same files from nginx (deploy/nginx.conf, racephoto/tests/test_deploy.py)
or from the S3 bucket's public URLs.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from PIL import Image
from rest_framework.authtoken.models import Token

from events.tests.factories import EventFactory
from photos.derivatives import make_derivatives
from photos.tests.factories import PhotoFactory
from photos.tests.images import jpeg

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(named_people):
    event = EventFactory(name="Semi de Villeurbanne", slug="semi-villeurbanne")
    photo = PhotoFactory(event=event, with_original=True)
    make_derivatives(photo)
    photo.refresh_from_db()
    photo.owner = named_people(event)["owner"]
    return photo


def api_urls(client, photo) -> dict[str, str]:
    token = Token.objects.get_or_create(user=photo.owner)[0].key
    response = client.get(f"/api/v1/photos/{photo.pk}/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    return {kind: response.json()[kind] for kind in ("preview", "thumbnail")}


def assert_is_the_image(content_type: str, body: bytes, stored_name: str) -> None:
    assert content_type == "image/jpeg"
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        assert image.format == "JPEG"
    with default_storage.open(stored_name, "rb") as stored:
        assert body == stored.read()


def test_a_preview_url_from_the_api_answers_with_the_image(client, photo, settings):
    urls = api_urls(client, photo)

    for kind, url in urls.items():
        response = client.get(urlsplit(url).path)
        assert response.status_code == 200, (kind, url)
        assert_is_the_image(response["Content-Type"], b"".join(response.streaming_content),
                            getattr(photo, kind).name)
        assert response["Cache-Control"] == settings.MEDIA_CACHE_CONTROL
        # A browser that has the file asks again cheaply.
        again = client.get(urlsplit(url).path, HTTP_IF_MODIFIED_SINCE=response["Last-Modified"])
        assert again.status_code == 304
    assert client.head(urlsplit(urls["preview"]).path).status_code == 200
    assert client.post(urlsplit(urls["preview"]).path).status_code == 405


@pytest.mark.parametrize("path", [
    "/media/{web}",
    "/media/previews/../../private/{web}",
    "/media/previews/%2e%2e/%2e%2e/private/{web}",
    "/media/previews/..%2f..%2fprivate%2f{web}",
    "/media/../private/{web}",
    "/media/thumbnails/./../../private/{original}",
    "/media/previews//{preview_tail}",
    "/media//etc/passwd",
    "/media/originals/{original}",
    "/media/watermarks/logo.png",
    "/media/previews/",
    "/media/previews/{event}",
    "/media/previews/{event}/page.html",
    "/media/previews/{event}/leak.jpg",
])
def test_it_answers_404_for_anything_but_a_public_derivative(client, photo, settings, path):
    media, private = Path(settings.MEDIA_ROOT), Path(settings.PRIVATE_MEDIA_ROOT)
    assert private.parent == media.parent  # a traversal from media/ would find the real files
    assert (private / photo.web.name).is_file() and (private / photo.original.name).is_file()
    default_storage.save("watermarks/logo.png", ContentFile(jpeg(seed=1)))
    (media / "previews" / str(photo.event_id) / "page.html").write_text("<script>alert(1)</script>")
    # A link planted in a public folder to a private file must not publish it.
    os.symlink(private / photo.web.name, media / "previews" / str(photo.event_id) / "leak.jpg")
    url = path.format(web=photo.web.name, original=photo.original.name, event=photo.event_id,
                      preview_tail=photo.preview.name.removeprefix("previews/"))

    assert client.get(url).status_code == 404
    assert client.get(f"/media/{photo.preview.name}").status_code == 200  # the real one still is


def test_it_serves_nothing_when_a_front_server_does(client, photo, settings):
    settings.SERVE_MEDIA = False
    assert client.get(f"/media/{photo.preview.name}").status_code == 404


# --- Over HTTP, from gunicorn as `make run` starts it ----------------------------------------
# (Django's live server would not do: it answers MEDIA_URL itself, around the URL routing.)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_this_test() -> str:
    db = connection.settings_dict
    if db["HOST"].startswith("/"):  # the embedded server: a Unix socket directory
        return f"postgres://{quote(db['USER'])}@/{db['NAME']}?host={quote(db['HOST'], safe='')}"
    credentials = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def gunicorn(settings, tmp_path):
    """The web server of `make run` (DEBUG on), on this test's database and files."""
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": database_url_of_this_test(),
           "REDIS_URL": settings.REDIS_URL, "MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "PRIVATE_MEDIA_ROOT": str(settings.PRIVATE_MEDIA_ROOT)}
    env.pop("SERVE_MEDIA", None)  # the development default, as `make run` has it
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "racephoto.wsgi:application",
             "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # 503: up, only a service behind it is not
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_the_apis_preview_urls_and_refuses_the_private_files(photo, gunicorn):
    token = Token.objects.get_or_create(user=photo.owner)[0].key
    request = urllib.request.Request(f"{gunicorn}/api/v1/events/{photo.event.slug}/photos/",
                                     headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        listed = json.load(response)["results"][0]

    for kind in ("preview", "thumbnail"):
        assert listed[kind].startswith(f"{gunicorn}/media/{kind}"), listed[kind]
        with urllib.request.urlopen(listed[kind], timeout=30) as response:
            assert_is_the_image(response.headers["Content-Type"], response.read(),
                                getattr(photo, kind).name)
    for path in (f"/media/{photo.web.name}", f"/media/previews/../../private/{photo.web.name}",
                 f"/media/previews/%2e%2e/%2e%2e/private/{photo.web.name}"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(gunicorn + path, timeout=30)
        assert refused.value.code == 404, path
