import datetime
import json
import re
import xml.etree.ElementTree as ET

import pytest

from events.tests.factories import EventFactory, RaceFactory

pytestmark = pytest.mark.django_db

SITEMAP_NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9",
              "xhtml": "http://www.w3.org/1999/xhtml"}


def _json_ld(html):
    blocks = re.findall(r'<script type="application/ld\+json">(.*?)</script>', html, re.DOTALL)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def test_it_gives_the_event_page_a_title_and_description(client):
    event = EventFactory(name="Marathon de Lyon",
                         description="  Le grand <b>marathon</b>\n d'automne. ")

    html = client.get(f"/en/events/{event.slug}/").content.decode()

    assert "<title>Marathon de Lyon – RacePhoto</title>" in html
    assert '<meta name="description" content="Le grand marathon d&#x27;automne.">' in html
    assert '<meta property="og:title" content="Marathon de Lyon">' in html
    assert '<meta property="og:description" content="Le grand marathon d&#x27;automne.">' in html


def test_it_describes_an_event_without_description(client):
    event = EventFactory(name="Cross de Bron", description="", location="Bron",
                         date=datetime.date(2031, 1, 12))

    html = client.get(f"/en/events/{event.slug}/").content.decode()

    assert ('<meta name="description" content="Race photos from Cross de Bron, Jan. 12, 2031 '
            'in Bron. Find yours by bib number, selfie or outfit.">') in html


def test_it_truncates_a_long_description(client):
    event = EventFactory(description="mot " * 200)

    response = client.get(f"/en/events/{event.slug}/")

    assert len(response.context["meta_description"]) <= 160


def test_it_links_the_canonical_and_language_versions(client):
    EventFactory(slug="semi-de-lyon")

    html = client.get("/en/events/semi-de-lyon/").content.decode()

    assert '<link rel="canonical" href="http://testserver/en/events/semi-de-lyon/">' in html
    assert ('<link rel="alternate" hreflang="fr" '
            'href="http://testserver/fr/events/semi-de-lyon/">') in html
    assert ('<link rel="alternate" hreflang="en" '
            'href="http://testserver/en/events/semi-de-lyon/">') in html
    assert ('<link rel="alternate" hreflang="x-default" '
            'href="http://testserver/fr/events/semi-de-lyon/">') in html
    assert '<meta property="og:url" content="http://testserver/en/events/semi-de-lyon/">' in html


def test_it_links_the_canonical_and_language_versions_of_the_list(client):
    html = client.get("/fr/").content.decode()

    assert '<link rel="canonical" href="http://testserver/fr/">' in html
    assert '<link rel="alternate" hreflang="en" href="http://testserver/en/">' in html
    assert '<link rel="alternate" hreflang="x-default" href="http://testserver/fr/">' in html


def test_it_describes_the_event_as_json_ld(client):
    event = EventFactory(name="10 km de Lyon", slug="10k-lyon", location="Lyon",
                         date=datetime.date(2031, 10, 12), description="Au bord du Rhône.")
    RaceFactory(event=event, name="10 km", start_time=datetime.time(10, 0))
    RaceFactory(event=event, name="5 km", start_time=datetime.time(9, 0))

    data = _json_ld(client.get("/fr/events/10k-lyon/").content.decode())

    assert data == {
        "@context": "https://schema.org",
        "@type": "SportsEvent",
        "name": "10 km de Lyon",
        "startDate": "2031-10-12T09:00:00+02:00",
        "url": "http://testserver/fr/events/10k-lyon/",
        "description": "Au bord du Rhône.",
        "location": {"@type": "Place", "name": "Lyon", "address": "Lyon"},
    }


def test_it_gives_a_bare_date_to_json_ld_without_start_times(client):
    event = EventFactory(date=datetime.date(2031, 10, 12), location="")

    data = _json_ld(client.get(f"/fr/events/{event.slug}/").content.decode())

    assert data["startDate"] == "2031-10-12"
    assert "location" not in data


def test_it_keeps_a_hostile_event_name_inside_its_script(client):
    name = "</script><script>alert(1)</script> & <!--"
    event = EventFactory(name=name, slug="hostile", location="<img src=x onerror=alert(1)>",
                         description="</script><b>")

    html = client.get("/en/events/hostile/").content.decode()

    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert html.count("</script>") == html.count("<script")
    data = _json_ld(html)
    assert data["name"] == name
    assert data["location"]["name"] == event.location


def test_it_lists_both_languages_of_published_events_in_the_sitemap(client):
    EventFactory(slug="published-race")
    EventFactory(slug="draft-race", is_published=False)

    response = client.get("/sitemap.xml")

    assert response.status_code == 200
    root = ET.fromstring(response.content)
    locations = [loc.text for loc in root.findall("s:url/s:loc", SITEMAP_NS)]
    assert "http://testserver/fr/events/published-race/" in locations
    assert "http://testserver/en/events/published-race/" in locations
    assert "http://testserver/fr/" in locations
    assert "http://testserver/en/" in locations
    assert not [loc for loc in locations if "draft-race" in loc]


def test_it_names_each_sitemap_entrys_translations(client):
    EventFactory(slug="published-race")

    root = ET.fromstring(client.get("/sitemap.xml").content)

    entry = next(url for url in root.findall("s:url", SITEMAP_NS)
                 if url.find("s:loc", SITEMAP_NS).text.endswith("/en/events/published-race/"))
    links = {link.get("hreflang"): link.get("href")
             for link in entry.findall("xhtml:link", SITEMAP_NS)}
    assert links == {
        "fr": "http://testserver/fr/events/published-race/",
        "en": "http://testserver/en/events/published-race/",
    }
    assert entry.find("s:lastmod", SITEMAP_NS) is not None


def test_it_serves_robots_txt(client):
    response = client.get("/robots.txt")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.content.decode().splitlines()
    assert lines[0] == "User-agent: *"
    assert "Disallow: /admin/" in lines
    assert "Allow: /" in lines
    assert "Sitemap: http://testserver/sitemap.xml" in lines


def test_it_refuses_to_post_to_robots_txt(client):
    assert client.post("/robots.txt").status_code == 405
