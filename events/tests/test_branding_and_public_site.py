"""Event set-up and the public site: the accent colour kept readable, logos kept private
until shown, the organiser's policy text, featured photos, organiser pages, the home
search without accents, the language switch keeping the query, the platform's name."""

import io
import random

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from PIL import Image

from events import branding
from events.models import Event, Organisation
from events.tests.factories import EventFactory
from photos.models import Face, Photo
from photos.tests.factories import PhotoFactory

pytestmark = pytest.mark.django_db


def png(size=(60, 30), colour=(10, 120, 60, 255)) -> bytes:
    output = io.BytesIO()
    Image.new("RGBA", size, colour).save(output, "PNG")
    return output.getvalue()


def page(client, name, language="en", **kwargs):
    with translation.override(language):
        return client.get(reverse(f"events:{name}", kwargs=kwargs))


# --- The accent colour -------------------------------------------------------------------


@pytest.mark.parametrize("colour", ["#ffff00", "#00ccff", "#ffffff", "#777777", "#0a7d3b",
                                    "#000000", "#ff6600"])
def test_every_accent_reads_on_white_and_its_band_text_reads_on_it(colour):
    palette = branding.palette(colour)

    assert branding.contrast(palette.accent, "#ffffff") >= branding.MIN_TEXT_CONTRAST
    assert branding.contrast(palette.accent_dark, "#ffffff") >= branding.MIN_TEXT_CONTRAST
    for panel in (branding.SURFACE, palette.accent_bg):
        assert branding.contrast(palette.accent, panel) >= branding.MIN_TEXT_CONTRAST
    assert branding.contrast(palette.band, palette.on_band) >= branding.MIN_TEXT_CONTRAST


def test_a_readable_accent_is_kept_as_chosen_and_a_light_one_keeps_its_hue():
    assert branding.palette("#0a7d3b").accent == "#0a7d3b"
    yellow = branding.palette("#ffff00").accent
    red, green, blue = (int(yellow[i:i + 2], 16) for i in (1, 3, 5))
    assert red == green and blue == 0  # darker, still yellow


def test_random_colours_all_read():
    rng = random.Random(7)
    for _ in range(300):
        colour = "#" + "".join(f"{rng.randrange(256):02x}" for _ in range(3))
        palette = branding.palette(colour)
        assert branding.contrast(palette.accent, branding.SURFACE) >= 4.5, colour
        assert branding.contrast(palette.accent, palette.accent_bg) >= 4.5, colour
        assert branding.contrast(palette.band, palette.on_band) >= 4.5, colour


def test_the_event_pages_use_the_accent(client):
    event = EventFactory(slug="jaune", accent_colour="#ffff00")

    html = page(client, "detail", slug=event.slug).content.decode()

    assert f'style="{event.palette.css}"' in html
    assert "event-header-branded" in html
    assert "--event-colour:#ffff00" in html and f"--accent:{event.palette.accent}" in html


def admin_form_data(admin_client, event, **changes):
    form = admin_client.get(reverse("admin:events_event_change", args=[event.pk])).context[
        "adminform"].form
    data = {name: value for name, value in form.initial.items()
            if name in form.fields and value is not None}
    for name in ("watermark_logo", "logo"):
        data.pop(name, None)
    data.update({"date": event.date.isoformat(), "organisers": [], "photographers": [],
                 "races-TOTAL_FORMS": 0, "races-INITIAL_FORMS": 0,
                 "start_list-TOTAL_FORMS": 0, "start_list-INITIAL_FORMS": 0, **changes})
    return {name: value for name, value in data.items() if value is not None}


def test_the_admin_saves_branding_and_refuses_a_colour_that_is_not_one(admin_client):
    event = EventFactory(slug="brand")
    url = reverse("admin:events_event_change", args=[event.pk])

    refused = admin_client.post(url, admin_form_data(admin_client, event, accent_colour="green"),
                                HTTP_ACCEPT_LANGUAGE="en")
    saved = admin_client.post(url, admin_form_data(
        admin_client, event, accent_colour="#0A7D3B", face_search_policy="Données gardées 1 an.",
        logo=SimpleUploadedFile("logo.png", png(), "image/png"),
        watermark_logo=SimpleUploadedFile("mark.png", png(), "image/png")))

    assert refused.status_code == 200
    assert "accent_colour" in refused.context["adminform"].form.errors
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    event.refresh_from_db()
    assert (event.accent_colour, event.face_search_policy) == ("#0a7d3b", "Données gardées 1 an.")
    # Both logos live in the private storage, where no URL serves files.
    for field in (event.logo, event.watermark_logo):
        assert storages["private"].exists(field.name)
        assert not storages["default"].exists(field.name)


def test_the_admin_shows_a_logo_to_the_events_organisers_only(client, named_people):
    event = EventFactory(slug="logos")
    event.watermark_logo.save("mark.png", ContentFile(png()))
    people = named_people(event)
    url = reverse("admin:events_event_logo", args=[event.pk, "watermark_logo"])

    client.force_login(people["owner"])
    shown = client.get(url)
    client.force_login(people["photographer"])
    hidden = client.get(url)

    assert (shown.status_code, shown["Content-Type"]) == (200, "image/png")
    assert hidden.status_code in (302, 404)


def test_the_public_logo_is_the_published_events_own_and_a_picture_only(client):
    event = EventFactory(slug="club", logo=ContentFile(png(), name="club.png"))
    draft = EventFactory(slug="draft", is_published=False, logo=ContentFile(png(), name="d.png"))
    fake = EventFactory(slug="fake", logo=ContentFile(b"<svg onload=alert(1)>", name="x.png"))

    assert page(client, "logo", slug=event.slug)["Content-Type"] == "image/png"
    assert page(client, "logo", slug=draft.slug).status_code == 404
    assert page(client, "logo", slug=fake.slug).status_code == 404
    html = page(client, "detail", slug=event.slug).content.decode()
    assert "/en/events/club/logo?v=" in html


def test_the_watermark_logo_is_printed_on_previews_from_the_private_storage(settings):
    from photos.derivatives import _logo_data

    event = EventFactory(slug="marked")
    event.watermark_logo.save("mark.png", ContentFile(png()))

    assert _logo_data(Event.objects.get(pk=event.pk)) == png()


def test_a_process_keeps_only_the_most_recently_used_watermark_logos(monkeypatch):
    from photos import derivatives

    monkeypatch.setattr(derivatives, "LOGOS_KEPT", 3)
    monkeypatch.setattr(derivatives, "_logo_cache", derivatives.OrderedDict())
    events = []
    for number in range(5):
        event = EventFactory(slug=f"marked-{number}")
        event.watermark_logo.save(f"mark-{number}.png", ContentFile(png()))
        events.append(event)
    for event in events[:3]:
        derivatives._logo_data(event)
    derivatives._logo_data(events[0])  # used again: kept over the second one

    for event in events[3:]:
        assert derivatives._logo_data(event) == png()

    assert list(derivatives._logo_cache) == [events[0].watermark_logo.name,
                                             events[3].watermark_logo.name,
                                             events[4].watermark_logo.name]


def test_a_watermark_logo_is_never_served_as_public_media(client, settings):
    settings.SERVE_MEDIA = True
    storages["default"].save("watermarks/old.png", ContentFile(png()))

    assert client.get("/media/watermarks/old.png").status_code == 404


# --- The organiser's face-search text, featured photos, organiser pages ---------------------


def test_the_organisers_policy_is_shown_in_the_readers_language(client):
    event = EventFactory(slug="policy", face_search_policy="Visages effacés après 6 mois.",
                         face_search_policy_en="Faces erased after 6 months.")

    assert "Faces erased after 6 months." in page(client, "detail", slug=event.slug).content.decode()
    assert "Visages effacés après 6 mois." in page(client, "detail", "fr",
                                                   slug=event.slug).content.decode()


def public_photo(event, **fields):
    return PhotoFactory(event=event, state=Photo.State.READY,
                        preview=ContentFile(b"p", name="p.jpg"),
                        thumbnail=ContentFile(b"t", name="t.jpg"), **fields)


def test_the_event_page_features_the_sharpest_photos_with_faces_unless_the_organiser_picked(
        client):
    event = EventFactory(slug="featured")
    sharp_face, blurry_face, sharp_empty = (public_photo(event, sharpness=value)
                                            for value in (90.0, 10.0, 99.0))
    for photo in (sharp_face, blurry_face):
        Face.objects.create(photo=photo, event=event, box=[1, 1, 9, 9], score=0.9)
    draft = PhotoFactory(event=event, state=Photo.State.UPLOADED, featured=True)

    automatic = page(client, "detail", slug=event.slug).context["featured"]
    Photo.objects.filter(pk=blurry_face.pk).update(featured=True)
    picked = page(client, "detail", slug=event.slug)

    assert [photo.pk for photo in automatic] == [sharp_face.pk, blurry_face.pk]
    assert [photo.pk for photo in picked.context["featured"]] == [blurry_face.pk]
    assert "Picked by the organiser" in picked.content.decode()
    assert draft.pk not in [photo.pk for photo in picked.context["featured"]]


def test_an_organisers_page_lists_its_published_events_and_the_event_links_to_it(client):
    club = Organisation.objects.create(name="Lyon Athlé", slug="lyon-athle",
                                       description_en="A running club.")
    shown = EventFactory(name="Semi de Lyon", slug="semi-lyon", organisation=club)
    EventFactory(name="Brouillon", slug="brouillon", organisation=club, is_published=False)
    EventFactory(name="Autre course", slug="autre")

    response = page(client, "organisation", slug=club.slug)
    html = response.content.decode()

    assert response.status_code == 200
    assert "Semi de Lyon" in html and "Brouillon" not in html and "Autre course" not in html
    assert "A running club." in html
    assert 'href="/en/organisers/lyon-athle/"' in page(client, "detail",
                                                       slug=shown.slug).content.decode()
    assert page(client, "organisation", slug="nobody").status_code == 404


# --- Home page, language switch, the platform's name ---------------------------------------


def test_the_home_search_ignores_accents_and_capitals(client):
    EventFactory(name="Fête de la course", slug="fete", location="Saint-Étienne")
    EventFactory(name="Corrida", slug="corrida", location="Lyon")

    def found(query):
        return [event.slug for event in page_with_query(client, query).context["results"]]

    assert found("Fete") == ["fete"]
    assert found("FÊTE saint-etienne") == ["fete"]
    assert found("100%") == []  # a LIKE wildcard typed is a character, not "anything"


def page_with_query(client, query, language="en"):
    with translation.override(language):
        path = reverse("events:list")
    return client.get(path, {"q": query})


def test_the_language_switch_keeps_the_search(client):
    EventFactory(name="Fête", slug="fete")

    html = page_with_query(client, "Fête").content.decode()

    assert 'href="/fr/?q=F%C3%AAte" hreflang="fr"' in html


def test_the_language_switch_of_other_pages_keeps_their_query(client, admin_user):
    client.force_login(admin_user)
    with translation.override("en"):
        path = reverse("accounts:profile")

    html = client.get(path + "?tab=1").content.decode()

    assert 'href="/fr/accounts/profile/?tab=1"' in html or "?tab=1\" hreflang=\"fr\"" in html


def test_pages_name_the_platform_from_settings(client, settings):
    settings.SITE_NAME = "Photos du Club"
    event = EventFactory(slug="named")

    for response in (page(client, "list"), page(client, "detail", slug=event.slug)):
        html = response.content.decode()
        assert "Photos du Club" in html and "RacePhoto" not in html


def test_the_error_pages_name_the_platform_without_a_request(settings):
    from django.template.loader import render_to_string

    settings.SITE_NAME = "Photos du Club"

    assert "Photos du Club" in render_to_string("500.html")


# --- Keeping an unindexed event's photo files out of search engines ------------------------


def test_robots_txt_keeps_an_unindexed_events_photo_files_out(client):
    hidden = EventFactory(slug="kids", search_engines_may_index=False)
    EventFactory(slug="open")

    text = client.get("/robots.txt").content.decode()

    assert f"Disallow: /media/previews/{hidden.pk}/" in text
    assert f"Disallow: /media/thumbnails/{hidden.pk}/" in text
    assert text.count("/media/") == 2


def test_the_development_server_marks_an_unindexed_events_files_noindex(client, settings):
    settings.SERVE_MEDIA = True
    hidden = EventFactory(slug="kids", search_engines_may_index=False)
    shown = EventFactory(slug="open")
    for event in (hidden, shown):
        storages["default"].save(f"previews/{event.pk}/1-token-digest.jpg", ContentFile(png()))

    kept_out = client.get(f"/media/previews/{hidden.pk}/1-token-digest.jpg")
    indexed = client.get(f"/media/previews/{shown.pk}/1-token-digest.jpg")

    assert (kept_out.status_code, kept_out["X-Robots-Tag"]) == (200, "noindex")
    assert indexed.status_code == 200 and "X-Robots-Tag" not in indexed
