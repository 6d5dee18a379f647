"""Outfit search: the English and French parser, the ranking of photos by the colours read
under each face and why each matched, bib + outfit together, the event page (?outfit=),
and CLIP text search when its weights are here (a tiny random model: plumbing only)."""

import datetime
import re
import shutil

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone, translation

from events.tests.factories import EventFactory, StartListEntryFactory
from mlpipeline import indexes, loaded
from mlpipeline.inference.clip import ClipEmbedder
from mlpipeline.inference.outfit import OutfitReader
from mlpipeline.tests.weights import TINY, build_tiny_clip
from photos.models import BibTag, Face, Outfit, Photo
from photos.tests.factories import PhotoFactory
from search import outfit
from search.outfit import Part
from search.services import SearchError

START = timezone.make_aware(datetime.datetime(2026, 9, 14, 9, 30))


# --- The parser --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "parts"), [
    ("red shirt white cap", [Part("red", "shirt"), Part("white", "cap")]),
    ("maillot rouge casquette blanche", [Part("red", "shirt"), Part("white", "cap")]),
    ("short noir", [Part("black", "legs")]),
    ("Black shorts", [Part("black", "legs")]),
    ("T-shirt jaune et collant noir", [Part("yellow", "shirt"), Part("black", "legs")]),
    ("tee-shirt bleu marine", [Part("navy", "shirt")]),
    ("débardeur vert et blanc, casquette noire",
     [Part("green", "shirt"), Part("white", "shirt"), Part("black", "cap")]),
    ("red and white jersey, black cap",
     [Part("red", "shirt"), Part("white", "shirt"), Part("black", "cap")]),
    ("leggings roses", [Part("pink", "legs")]),
    ("Casquettes violettes", [Part("purple", "cap")]),
    ("bonnet gris", [Part("grey", "cap")]),
    ("dark blue tights", [Part("navy", "legs")]),
    ("collant bleu foncé", [Part("navy", "legs")]),
    ("light blue top", [Part("blue", "shirt")]),
    ("pantalon marron", [Part("brown", "legs")]),
    ("rouge", [Part("red")]),  # a colour alone fits any garment
    ("orange", [Part("orange")]),
    ("I was wearing a green hat", [Part("green", "cap")]),
    ("je portais un maillot orange", [Part("orange", "shirt")]),
])
def test_it_reads_english_and_french_descriptions(text, parts):
    assert list(outfit.parse(text).parts) == parts


@pytest.mark.parametrize("text", ["", "   ", "casquette", "a shirt"])
def test_a_description_without_a_colour_says_what_is_understood(text):
    with translation.override("en"), pytest.raises(SearchError, match="Describe the outfit "
                                                                      "with colours \\(white"):
        outfit.parse(text)


def test_unknown_words_are_named_and_the_vocabulary_listed_in_the_runners_language():
    with translation.override("fr"), pytest.raises(SearchError) as error:
        outfit.parse("maillot rouge à pois licorne")
    message = str(error.value)
    assert message.startswith("Non compris\u00a0: “pois”, “licorne”.")
    assert "blanc, noir, gris, rouge" in message and "maillot, casquette, short, collant" in message

    with translation.override("en"), pytest.raises(SearchError, match="Not understood: “polka”"):
        outfit.parse("polka red shirt")
    with translation.override("en"), pytest.raises(SearchError, match="fewer words"):
        outfit.parse("red " * 60)


def test_the_english_put_to_clip_names_the_garments():
    assert outfit.parse("maillot rouge casquette blanche").english() == (
        "a photo of a runner wearing red shirt and white cap")
    assert outfit.parse("vert").english() == "a photo of a runner wearing green clothes"


def test_reasons_agree_with_the_garment_in_french():
    with translation.override("fr"):
        assert outfit.reason_label("outfit:cap:white") == "casquette blanche"
        assert outfit.reason_label("outfit:shirt:white") == "maillot blanc"
        assert outfit.reason_label("outfit:legs:navy") == "short bleu marine"
    with translation.override("en"):
        assert outfit.reason_label("outfit:shirt:red") == "red shirt"
    assert outfit.reason_label("outfit:hat:red") is None
    assert outfit.reason_label("ocr") is None


# --- Search over stored colours ----------------------------------------------------------

def ready_photo(event, minute) -> Photo:
    photo = PhotoFactory(event=event, state=Photo.State.READY, width=6000, height=4000,
                         captured_at=START + datetime.timedelta(minutes=minute))
    photo.preview = f"previews/{photo.pk}.jpg"
    photo.thumbnail = f"thumbnails/{photo.pk}.jpg"
    photo.save()
    return photo


def dressed(photo, cap="", shirt="", legs="", confidence=0.8) -> Outfit:
    """A runner in ``photo`` wearing these colours (as the outfit step stores them)."""
    face = Face.objects.create(photo=photo, event=photo.event, box=[10, 10, 50, 60], score=0.99)
    return Outfit.objects.create(
        photo=photo, event=photo.event, face=face, model=OutfitReader.signature,
        cap=cap, cap_confidence=confidence if cap else 0.0,
        shirt=shirt, shirt_confidence=confidence if shirt else 0.0,
        legs=legs, legs_confidence=confidence if legs else 0.0)


@pytest.fixture
def no_clip(settings, tmp_path):
    settings.MODELS_DIR = tmp_path  # no CLIP weights: the colours answer


@pytest.mark.django_db
def test_photos_rank_by_how_much_of_the_outfit_one_runner_wears(no_clip):
    event = EventFactory()
    both, shirt_only, cap_only, split, other = (ready_photo(event, m) for m in range(5))
    dressed(both, cap="white", shirt="red", confidence=0.6)
    dressed(shirt_only, shirt="red", legs="black", confidence=0.9)
    dressed(cap_only, cap="white", shirt="blue", confidence=0.7)
    # A red shirt and a white cap on two different runners: one part each, not both.
    dressed(split, shirt="red", confidence=0.5)
    dressed(split, cap="white", shirt="green", confidence=0.5)
    dressed(other, shirt="yellow", cap="red")
    dressed(ready_photo(EventFactory(), 6), shirt="red", cap="white")  # another event

    matches = outfit.photos_by_colours(event, outfit.parse("maillot rouge casquette blanche"))

    assert [match.photo_id for match in matches] == [both.pk, shirt_only.pk, cap_only.pk, split.pk]
    assert matches[0].reasons == ("outfit:shirt:red", "outfit:cap:white")
    assert matches[1].reasons == ("outfit:shirt:red",)
    assert matches[2].reasons == ("outfit:cap:white",)


@pytest.mark.django_db
def test_a_colour_alone_matches_any_garment_and_says_which(no_clip):
    event = EventFactory()
    shirt, cap, legs, none = (ready_photo(event, m) for m in range(4))
    dressed(shirt, shirt="orange")
    dressed(cap, cap="orange", shirt="black")
    dressed(legs, legs="orange", shirt="white", confidence=0.5)
    dressed(none, shirt="red")

    matches = outfit.photos_by_outfit(event, "orange")

    assert {match.photo_id: match.reasons for match in matches} == {
        shirt.pk: ("outfit:shirt:orange",), cap.pk: ("outfit:cap:orange",),
        legs.pk: ("outfit:legs:orange",)}
    assert matches[-1].photo_id == legs.pk  # the least sure last


def test_bib_and_outfit_together_rank_the_photos_matching_both_first():
    from search.services import Match

    bib = [Match(1, 0.9, ("ocr",)), Match(2, 0.8, ("face-link",)), Match(3, 0.7, ("ocr",))]
    worn = [Match(3, 2.5, ("outfit:shirt:red",)), Match(4, 1.9, ("outfit:shirt:red",))]

    combined = outfit.combine(bib, worn)

    assert [match.photo_id for match in combined] == [3, 1, 2, 4]
    assert combined[0].reasons == ("ocr", "outfit:shirt:red")


# --- The event page ----------------------------------------------------------------------

def page_url(slug, query, language="en"):
    with translation.override(language):
        return f"{reverse('events:detail', kwargs={'slug': slug})}?{query}"


def tile_reasons(html) -> dict[int, list[str]]:
    found = {}
    for tile in re.split(r'<li class="photo-tile">', html)[1:]:
        photo = re.search(r'/photos/(\d+)/', tile)
        found[int(photo[1])] = re.findall(r'class="reason"[^>]*>([^<]+)<', tile)
    return found


@pytest.mark.django_db
def test_the_event_page_searches_by_outfit_in_french_with_a_shareable_address(client, no_clip):
    event = EventFactory(slug="semi")
    mine, near, other = (ready_photo(event, m) for m in range(3))
    dressed(mine, cap="white", shirt="red")
    dressed(near, shirt="red", legs="black")
    dressed(other, shirt="blue")

    response = client.get(page_url("semi", "outfit=maillot+rouge+casquette+blanche", "fr"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Tenue «\u00a0maillot rouge casquette blanche\u00a0»" in html
    reasons = tile_reasons(html)
    assert list(reasons) == [mine.pk, near.pk]
    assert reasons[mine.pk] == ["maillot rouge", "casquette blanche"]
    assert 'value="maillot rouge casquette blanche"' in html  # the search stays in the box
    assert "2 photos trouvées" in html


@pytest.mark.django_db
def test_outfit_and_bib_on_the_page(client, no_clip):
    event = EventFactory(slug="semi")
    StartListEntryFactory(event=event, bib="1234", first_name="Marie", last_name="Durand")
    tagged_red, tagged_blue, red = (ready_photo(event, m) for m in range(3))
    for photo in (tagged_red, tagged_blue):
        BibTag.objects.create(photo=photo, bib="1234", source=BibTag.Source.OCR, confidence=0.9,
                              confirmed=True)
    dressed(tagged_red, shirt="red")
    dressed(tagged_blue, shirt="blue")
    dressed(red, shirt="red")

    html = client.get(page_url("semi", "bib=1234&outfit=red+shirt")).content.decode()

    assert "Bib 1234 — Marie D. · outfit “red shirt”" in html
    reasons = tile_reasons(html)
    assert list(reasons) == [tagged_red.pk, tagged_blue.pk, red.pk]
    assert reasons[tagged_red.pk] == ["Bib read on the photo", "red shirt"]
    assert reasons[red.pk] == ["red shirt"]
    assert f"/photos/{tagged_red.pk}/?bib=1234" in html


@pytest.mark.django_db
def test_an_outfit_the_page_cannot_read_says_what_it_understands(client, no_clip):
    EventFactory(slug="semi")

    html = client.get(page_url("semi", "outfit=pizza")).content.decode()

    assert "Not understood: “pizza”." in html and "garments (shirt, cap, shorts, tights)" in html


@pytest.mark.django_db
def test_an_outfit_nobody_wore_says_so(client, no_clip):
    event = EventFactory(slug="semi")
    dressed(ready_photo(event, 1), shirt="red")

    html = client.get(page_url("semi", "outfit=green")).content.decode()

    assert "No photo matches this outfit yet." in html


@pytest.mark.django_db
def test_more_outfit_results_come_page_by_page(client, no_clip):
    event = EventFactory(slug="semi")
    photos = [ready_photo(event, m) for m in range(30)]
    for photo in photos:
        dressed(photo, shirt="red")

    first = client.get(page_url("semi", "outfit=red")).content.decode()
    more = re.search(r'href="([^"]*/photos/\?[^"]*start=24[^"]*)"', first)
    second = client.get(more[1].replace("&amp;", "&")).content.decode()

    assert len(tile_reasons(first)) == 24 and len(tile_reasons(second)) == 6
    assert set(tile_reasons(first)) | set(tile_reasons(second)) == {photo.pk for photo in photos}


# --- CLIP, when its weights are here -----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def tiny_clip(settings, tmp_path, monkeypatch, tiny_weights):
    """CLIP "installed": its weights file in MODELS_DIR, the tiny random model loaded."""
    settings.MODELS_DIR = tmp_path
    shutil.copy(tiny_weights, tmp_path / ClipEmbedder.weights_file)
    clip = ClipEmbedder(TINY, weights_path=tiny_weights, pretrained=False)
    monkeypatch.setattr(loaded, "clip_embedder", lambda: clip)
    return clip


@pytest.mark.django_db
def test_with_clip_a_photo_counts_only_where_it_stands_out_of_the_events_scores(tiny_clip):
    assert outfit.active_mode() == outfit.MODE_CLIP
    event = EventFactory()
    query = outfit.parse("maillot rouge casquette blanche")
    text = tiny_clip.embed_text(query.english())
    rng = np.random.default_rng(0)
    photos = [ready_photo(event, m) for m in range(40)]
    for index, photo in enumerate(photos):
        noise = rng.normal(size=text.shape)
        # Two photos close to the description, the rest random directions.
        vector = text + 0.15 * noise if index in (7, 21) else noise
        photo.clip_embedding = (vector / np.linalg.norm(vector)).tolist()
        photo.clip_model = tiny_clip.signature
        photo.save()

    matches = outfit.photos_by_outfit(event, "maillot rouge casquette blanche")

    assert {match.photo_id for match in matches} == {photos[7].pk, photos[21].pk}
    assert all(match.reasons == (outfit.REASON_CLIP,) and match.score >= outfit.CLIP_MIN_Z
               for match in matches)


@pytest.mark.django_db
def test_with_clip_the_events_index_answers_with_the_same_relative_cut_off(tiny_clip, settings,
                                                                           tmp_path, monkeypatch):
    settings.INDEX_DIR = tmp_path / "indexes"
    event = EventFactory()
    query = outfit.parse("red shirt")
    text = tiny_clip.embed_text(query.english())
    rng = np.random.default_rng(2)
    photos = [ready_photo(event, m) for m in range(300)]
    for index, photo in enumerate(photos):
        noise = rng.normal(size=text.shape)
        vector = text + 0.15 * noise if index in (5, 150, 299) else noise
        photo.clip_embedding = (vector / np.linalg.norm(vector)).tolist()
        photo.clip_model = tiny_clip.signature
    Photo.objects.bulk_update(photos, ["clip_embedding", "clip_model"])
    flat = {match.photo_id for match in outfit.photos_by_clip(event, query)}  # no index yet
    indexes.sync(event.pk, indexes.CLIP)

    def no_flat_scan(*args, **kwargs):
        raise AssertionError("every photo was scored in PostgreSQL")

    monkeypatch.setattr(outfit, "CosineDistance", no_flat_scan)
    matches = outfit.photos_by_clip(event, query)

    assert {match.photo_id for match in matches} == flat == {photos[i].pk for i in (5, 150, 299)}
    assert all(match.score >= outfit.CLIP_MIN_Z for match in matches)


@pytest.mark.django_db
def test_with_clip_an_event_of_look_alike_photos_has_no_match(tiny_clip):
    event = EventFactory()
    rng = np.random.default_rng(1)
    for minute in range(30):
        vector = rng.normal(size=32)
        photo = ready_photo(event, minute)
        photo.clip_embedding = (vector / np.linalg.norm(vector)).tolist()
        photo.clip_model = tiny_clip.signature
        photo.save()

    # Nothing stands out: never the whole event listed as matches.
    assert len(outfit.photos_by_outfit(event, "red shirt")) < 3


@pytest.mark.django_db
def test_with_clip_but_no_photo_embedded_yet_the_colours_answer(tiny_clip):
    event = EventFactory()
    photo = ready_photo(event, 1)
    dressed(photo, shirt="red")

    assert [match.photo_id for match in outfit.photos_by_outfit(event, "red")] == [photo.pk]
