"""SEARCH_BACKEND=pgvector behind a load balancer: two gunicorn servers, each on a var dir
of its own (so no hnswlib file could answer for it), on one PostgreSQL, answer the same
bib, selfie and bib + selfie searches with the same photos for the same reasons, and
both follow a runner's opt-out at once: no web process keeps search state of its own."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from accounts.models import BibClaim
from accounts.privacy import claim_bib
from accounts.tests.factories import UserFactory
from events.models import Event
from events.tests.factories import EventFactory
from photos.models import BibTag
from search.tests.test_pages import photo_with_faces, ready_photo, selfie_of_astronaut
from tests.scale.stack import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]


class WebServer:
    """gunicorn as production runs it (DEBUG off), one per machine."""

    def __init__(self, name, root: Path, settings):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        var = root / name / "var"
        var.mkdir(parents=True)
        self.log = root / f"{name}.log"
        env = {key: value for key, value in os.environ.items()
               if key not in ("MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "INDEX_DIR", "DEBUG")}
        env.update({
            "RACEPHOTO_VAR_DIR": str(var), "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL, "SEARCH_BACKEND": "pgvector",
            "DEBUG": "0", "SECRET_KEY": "two-web-processes", "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0", "SECURE_COOKIES": "0",
            # The tests' selfies all come from one address: lift the per-address cap.
            "SELFIE_SEARCH_RATE": "1000/min", "PUBLIC_API_RATE": "1000/min",
        })
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), "racephoto.wsgi:application",
                 "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "120"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_until_up(self, deadline):
        while True:
            try:
                requests.get(f"{self.base}/healthz", timeout=5)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.3)

    def search(self, slug, bib=None, selfie=None) -> list[tuple[int, list[str]]]:
        """(photo id, reason codes) of each result, in the order answered."""
        url = f"{self.base}/api/v1/events/{slug}/search/"
        if selfie is None:
            response = requests.get(url, params={"bib": bib}, timeout=120)
        else:
            response = requests.post(url, data={"bib": bib} if bib else {}, timeout=120,
                                     files={"selfie": ("selfie.jpg", selfie, "image/jpeg")})
        assert response.status_code == 200, (response.status_code, response.text[:500],
                                              self.log.read_text()[-2000:])
        return [(result["id"], [reason["code"] for reason in result["reasons"]])
                for result in response.json()["results"]]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.mark.django_db(transaction=True)
def test_two_web_processes_on_pgvector_answer_every_search_alike(settings, tmp_path):
    settings.SEARCH_BACKEND = "pgvector"
    servers = [WebServer(name, tmp_path, settings) for name in ("web-a", "web-b")]
    try:
        event = EventFactory(slug="semi-deux-serveurs", face_search=Event.FaceSearch.ON)
        astronaut = [photo_with_faces(event, ("astronaut", (120, 0, 330, 260), at, scale, seed),
                                      minute, bib="42")
                     for minute, (at, scale, seed) in enumerate([((400, 150), 1.3, 1),
                                                                 ((100, 80), 1.0, 2)])]
        cameraman = photo_with_faces(event, ("cameraman", (150, 60, 320, 260), (300, 100), 1.2, 3),
                                     5, bib="43")
        read = ready_photo(event, 9)
        BibTag.objects.create(photo=read, bib="42", confidence=0.9, source="ocr", confirmed=True)
        selfie = selfie_of_astronaut()
        deadline = time.monotonic() + 180
        for server in servers:
            server.wait_until_up(deadline)

        searches = {"bib": {"bib": "42"}, "selfie": {"selfie": selfie},
                    "bib and selfie": {"bib": "42", "selfie": selfie},
                    "other bib": {"bib": "43"}}
        answers = {name: [server.search(event.slug, **query) for server in servers]
                   for name, query in searches.items()}
        for name, (first, second) in answers.items():
            assert first == second, name
        found_by_face = {photo for photo, reasons in answers["selfie"][0] if "face" in reasons}
        assert found_by_face == {photo.pk for photo in astronaut}
        assert cameraman.pk not in found_by_face
        assert {photo for photo, _reasons in answers["bib"][0]} >= {read.pk}

        # The runner of bib 42 opts out: both servers stop finding them by face at once.
        claim_bib(UserFactory(username="astronaut-42"), event, "42",
                  face_search=BibClaim.FaceSearch.OPTED_OUT)
        after = [server.search(event.slug, selfie=selfie) for server in servers]
        assert after[0] == after[1]
        assert not {photo for photo, reasons in after[0] if "face" in reasons} & found_by_face
    finally:
        for server in servers:
            server.stop()
