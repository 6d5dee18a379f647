"""A runner on a phone signs up in French, confirms their address, signs in and opts out
of face search for their bib."""

import re

import pytest
from django.core import mail

from accounts.models import BibClaim
from events.models import Event
from events.tests.factories import EventFactory
from photos.models import Face
from photos.tests.factories import PhotoFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("own_cache")]

PASSWORD = "une phrase de passe assez longue"


def test_it_signs_up_confirms_signs_in_and_opts_out_in_french(live_server, page):
    event = EventFactory(name="Semi de Lyon", face_search=Event.FaceSearch.ON)
    face = Face.objects.create(photo=PhotoFactory(event=event), event=event, box=[0, 0, 9, 9],
                               score=0.99, embedding=[1.0, 0.0], model="test@1", bib="42")
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))

    page.goto(f"{live_server.url}/fr/")
    page.get_by_role("link", name="Se connecter").click()
    page.wait_for_url(re.compile(r"/fr/accounts/login/"))
    page.get_by_role("link", name="enregistrer").click()
    page.fill("#id_email", "camille@example.org")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/fr/accounts/confirm-email/$"))

    link = re.search(r"https?://\S+/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/fr/accounts/login/"))
    page.fill("#id_login", "camille@example.org")
    page.fill("#id_password", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/fr/accounts/profile/$"))
    assert page.locator("h1").inner_text() == "Mon compte"

    page.get_by_role("link", name="Mes dossards et ma vie privée").click()
    page.select_option("#id_event", label="Semi de Lyon")
    page.fill("#id_bib", "42")
    page.get_by_label("Je ne veux pas être retrouvé par mon visage").check()
    page.get_by_role("button", name="Enregistrer").click()

    page.wait_for_url(re.compile(r"/fr/accounts/privacy/$"))
    messages = page.locator(".messages").inner_text()
    assert "Votre choix est enregistré" in messages
    # No start list at this event: the bib could not be checked, and the runner is told.
    warning = page.locator(".messages .notice-warning").inner_text()
    assert "Semi de Lyon n’a pas de liste des inscrits" in warning
    assert page.locator(".claims").inner_text().count(
        "Vous ne voulez pas être retrouvé·e par votre visage.") == 1
    claim = BibClaim.objects.get(user__email="camille@example.org")
    assert (claim.bib, claim.face_search) == ("42", BibClaim.FaceSearch.OPTED_OUT)
    face.refresh_from_db()
    assert face.searchable is False
    assert script_errors == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
