"""Draws the home-screen icons of the web app manifest (static/manifest.webmanifest) from
the favicon's design (static/favicon.svg: a white camera on the brand's rounded square).

The PNGs are committed; run this again only when the design changes:
``python manage.py make_icons``. Pillow draws them (no SVG renderer is needed), four times
larger than asked and then scaled down, for smooth edges.
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from PIL import Image, ImageDraw

BRAND = "#d2491e"  # favicon.svg's fill
WHITE = "#ffffff"
SUPERSAMPLE = 4
# name: (size in px, maskable). A maskable icon fills its square (the phone cuts its own
# shape) and keeps the drawing inside the central 80 % "safe zone".
ICONS = {"icon-192.png": (192, False), "icon-512.png": (512, False),
         "icon-maskable-512.png": (512, True)}


def draw_icon(size: int, maskable: bool = False) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if maskable:
        draw.rectangle((0, 0, big, big), fill=BRAND)
        scale, offset = big * 0.8 / 64, big * 0.1
    else:
        scale, offset = big / 64, 0.0
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=14 * scale, fill=BRAND)

    def at(x, y):  # favicon.svg's 64-unit coordinates to pixels
        return offset + x * scale, offset + y * scale

    # The camera's body, its viewfinder hump, lens (two rings) and flash, as in the SVG.
    draw.rounded_rectangle((*at(7, 22), *at(57, 52)), radius=5 * scale, fill=WHITE)
    draw.polygon([at(20, 22), at(24, 15), at(40, 15), at(44, 22)], fill=WHITE)
    for radius, colour in ((11, BRAND), (5.5, WHITE)):
        draw.ellipse((*at(32 - radius, 36 - radius), *at(32 + radius, 36 + radius)), fill=colour)
    draw.rounded_rectangle((*at(46, 26), *at(51, 29)), radius=1.5 * scale, fill=BRAND)
    return image.resize((size, size), Image.Resampling.LANCZOS)


class Command(BaseCommand):
    help = "Draw the web app manifest's icons into static/icons/ from the favicon's design."

    def handle(self, *args, **options):
        folder = Path(settings.BASE_DIR) / "static" / "icons"
        folder.mkdir(parents=True, exist_ok=True)
        for name, (size, maskable) in ICONS.items():
            draw_icon(size, maskable).save(folder / name, optimize=True)
            self.stdout.write(f"{folder / name}: {size}×{size}")
