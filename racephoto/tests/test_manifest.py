"""The web app manifest: linked from every page, valid, and its icons are what it says."""

import io
import json
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from PIL import Image

STATIC = Path(settings.BASE_DIR) / "static"


def test_every_page_links_the_manifest_and_a_theme_colour(client, db):
    html = client.get("/en/").content.decode()

    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in html
    assert '<meta name="theme-color" content="#ffffff">' in html


def test_the_manifest_opens_the_site_standalone_with_icons_of_the_sizes_it_names():
    manifest = json.loads((STATIC / "manifest.webmanifest").read_text())

    assert manifest["display"] == "standalone"
    # Served from /static/: without an explicit scope the app would cover /static/ only.
    assert (manifest["start_url"], manifest["scope"]) == ("/", "/")
    purposes = set()
    for icon in manifest["icons"]:
        with Image.open(STATIC / icon["src"]) as image:
            assert f"{image.width}x{image.height}" == icon["sizes"]
            assert image.format == "PNG"
        purposes.add(icon["purpose"])
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
    assert purposes == {"any", "maskable"}


def test_the_committed_icons_are_what_make_icons_draws(tmp_path, settings):
    settings.BASE_DIR = tmp_path
    call_command("make_icons", stdout=io.StringIO())

    for drawn in (tmp_path / "static" / "icons").iterdir():
        with Image.open(drawn) as fresh, Image.open(STATIC / "icons" / drawn.name) as committed:
            assert fresh.size == committed.size
            assert fresh.convert("RGBA").tobytes() == committed.convert("RGBA").tobytes(), drawn.name
