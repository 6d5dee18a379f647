"""The demo event's race photos, drawn with Pillow when the demo is loaded.

Each photo is a course scene (sky, trees, crowd barriers, road) with one to
three runners: a real face (greyscale public-domain portraits shipped in
``faces/``, see ``faces/CREDITS.md``, tinted to a skin tone), a shirt, shorts
and sometimes a cap in a named colour, and a printed bib on the chest. The
same runner comes back in several photos with the same face and bib; in some
the bib is turned over, so only face linking can give that photo its number.
One runner wears a bib that is not on the start list: the organiser sees those
readings counted as "not on the start list".

Everything is fixed by the plan below and a seed per photo, so every install
draws the same pixels and a second load finds the same photos already there.
No database here: the loader (``events.demo.loader``) ingests the files.
"""

import io
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from PIL import ExifTags, Image, ImageDraw, ImageFilter, ImageFont, ImageOps

FACES_DIR = Path(__file__).resolve().parent / "faces"
#: the scene is drawn at this size (the plan's face heights are in its pixels) ...
WIDTH, HEIGHT = 1600, 1067
#: ... and delivered at this one (64 % of the pixels): the face detector's time goes with
#: the pixels, and the whole demo must be processed within two minutes on two cores
#: (bench/demo.py)
SIZE = (1280, 853)
FIRST_SHOT = datetime(2025, 10, 12, 9, 20)

COLOURS = {
    "red": (200, 32, 45),
    "blue": (32, 78, 190),
    "yellow": (242, 204, 36),
    "green": (34, 139, 64),
    "white": (240, 240, 236),
    "black": (28, 28, 32),
    "orange": (236, 120, 30),
}

# Dark and light ends of the tint given to a greyscale portrait.
SKIN_TONES = {
    "light": ((60, 38, 30), (255, 228, 206)),
    "medium": ((50, 30, 20), (236, 196, 160)),
    "dark": ((30, 18, 12), (186, 140, 108)),
}


@dataclass(frozen=True)
class DemoRunner:
    bib: str
    face: str  # file in faces/
    skin: str  # key of SKIN_TONES
    shirt: str  # keys of COLOURS
    shorts: str
    cap: str | None = None

    @property
    def outfit(self) -> str:
        """The outfit in words, as a runner would describe it to outfit search."""
        words = [f"{self.shirt} shirt", f"{self.shorts} shorts"]
        if self.cap:
            words.append(f"{self.cap} cap")
        return ", ".join(words)


RUNNERS = (
    DemoRunner("102", "B001287.jpg", "medium", "blue", "black"),
    DemoRunner("103", "B001245.jpg", "light", "red", "black", cap="white"),
    DemoRunner("104", "C001097.jpg", "medium", "yellow", "blue"),
    DemoRunner("105", "E000290.jpg", "dark", "green", "black"),
    DemoRunner("107", "M001188.jpg", "light", "blue", "white"),
    DemoRunner("109", "H001063.jpg", "light", "orange", "black"),
    DemoRunner("114", "F000451.jpg", "medium", "white", "red", cap="red"),
    DemoRunner("116", "K000379.jpg", "light", "black", "black", cap="yellow"),
    DemoRunner("119", "R000435.jpg", "light", "yellow", "black", cap="white"),
    DemoRunner("121", "S001164.jpg", "light", "red", "blue"),
    DemoRunner("122", "T000459.jpg", "light", "green", "black", cap="blue"),
    # Ran without registering: the bib reader reads 257, the start list does not have it.
    DemoRunner("257", "P000603.jpg", "light", "white", "blue"),
)
UNREGISTERED_BIBS = frozenset({"257"})
RUNNER_BY_BIB = {runner.bib: runner for runner in RUNNERS}


@dataclass(frozen=True)
class Appearance:
    """One runner in one photo: bib, where (centre x, share of the width), how large
    (face height in pixels) and whether the bib shows its number."""
    bib: str
    x: float
    face_height: int
    bib_turned: bool = False


@dataclass(frozen=True)
class DemoPhoto:
    number: int
    runners: tuple[Appearance, ...]

    @property
    def name(self) -> str:
        return f"demo-{self.number:02d}.jpg"

    @property
    def bibs_shown(self) -> frozenset[str]:
        """Bibs whose number can be read in this photo."""
        return frozenset(a.bib for a in self.runners if not a.bib_turned)

    @property
    def bibs_present(self) -> frozenset[str]:
        """Bibs of every runner in this photo, read or not."""
        return frozenset(a.bib for a in self.runners)


def _one(bib, x=0.5, size=120, turned=False):
    return Appearance(bib, x, size, turned)


# A close-up of every runner, pairs and trios side by side, and for most runners one
# photo where the bib is turned over (face linking carries the number there).
PLAN = (
    (_one("102"),),
    (_one("103"),),
    (_one("104"),),
    (_one("105"),),
    (_one("107"),),
    (_one("109"),),
    (_one("114"),),
    (_one("116"),),
    (_one("119"),),
    (_one("121"),),
    (_one("122"),),
    (_one("257"),),
    (_one("102", 0.3, 96), _one("103", 0.7, 92)),
    (_one("104", 0.28, 94), _one("105", 0.72, 98)),
    (_one("107", 0.3, 96), _one("109", 0.7, 94)),
    (_one("114", 0.3, 92), _one("116", 0.7, 98)),
    (_one("119", 0.3, 96), _one("121", 0.7, 92)),
    (_one("122", 0.3, 96), _one("257", 0.7, 94)),
    (_one("102", 0.2, 84), _one("105", 0.5, 88), _one("109", 0.8, 84)),
    (_one("103", 0.2, 86), _one("114", 0.5, 84), _one("121", 0.8, 88)),
    (_one("104", 0.2, 84), _one("116", 0.5, 88), _one("119", 0.8, 84)),
    (_one("107", 0.25, 90), _one("122", 0.72, 92)),
    (_one("102", turned=True),),
    (_one("103", turned=True),),
    (_one("105", turned=True),),
    (_one("109", turned=True),),
    (_one("116", turned=True),),
    (_one("121", turned=True),),
    (_one("104", 0.3, 96, turned=True), _one("107", 0.7, 94)),
    (_one("114", 0.3, 94), _one("119", 0.7, 96, turned=True)),
)
PHOTOS = tuple(DemoPhoto(number, runners) for number, runners in enumerate(PLAN, start=1))


def photos_of(bib: str) -> list[DemoPhoto]:
    """The demo photos the runner with ``bib`` is in, bib readable or not."""
    return [photo for photo in PHOTOS if bib in photo.bibs_present]


# --- Drawing -----------------------------------------------------------------------------


@cache
def _portrait(name: str) -> Image.Image:
    path = FACES_DIR / name
    with Image.open(path) as image:
        return image.convert("L")


@cache
def _bib_font_path() -> str | None:
    import importlib.util

    for package, file in (("font_lato", "Lato-Black.ttf"), ("font_lato", "Lato-Bold.ttf")):
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / "files" / file
            if path.is_file():
                return str(path)
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",):
        if Path(path).is_file():
            return path
    return None


def _font(size: int):
    path = _bib_font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def _shade(colour, factor):
    return tuple(max(0, min(255, int(channel * factor))) for channel in colour)


def _background(rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    horizon = int(HEIGHT * 0.42)
    for y in range(horizon):  # sky, lighter towards the horizon
        t = y / horizon
        draw.line((0, y, WIDTH, y), fill=(int(110 + 90 * t), int(160 + 70 * t), int(225 + 25 * t)))
    for _ in range(40):  # trees along the river bank
        x = rng.randrange(-60, WIDTH)
        radius = rng.randrange(50, 110)
        green = (rng.randrange(40, 80), rng.randrange(100, 150), rng.randrange(40, 80))
        draw.ellipse((x, horizon - radius * 1.6, x + radius * 2, horizon + radius * 0.4), fill=green)
    road_top = int(HEIGHT * 0.55)
    draw.rectangle((0, horizon, WIDTH, road_top), fill=(150, 150, 146))  # pavement
    # Spectators behind the barriers: heads and shoulders too small and plain to be faces.
    for _ in range(55):
        x = rng.randrange(0, WIDTH)
        body = tuple(rng.randrange(40, 230) for _ in range(3))
        draw.rounded_rectangle((x - 16, horizon + 20, x + 16, road_top), radius=10, fill=body)
        draw.ellipse((x - 9, horizon + 2, x + 9, horizon + 22), fill=(120, 92, 74))
    for x in range(0, WIDTH, 160):  # crowd barriers
        draw.rectangle((x + 4, road_top - 48, x + 156, road_top - 8), outline=(210, 210, 214),
                       width=5)
        for bar in range(x + 24, x + 156, 22):
            draw.line((bar, road_top - 46, bar, road_top - 10), fill=(200, 200, 204), width=3)
    for y in range(road_top, HEIGHT):  # the road, darker towards the camera
        t = (y - road_top) / (HEIGHT - road_top)
        draw.line((0, y, WIDTH, y), fill=_shade((96, 96, 100), 1.0 - 0.25 * t))
    draw.polygon(((WIDTH * 0.48, road_top), (WIDTH * 0.52, road_top), (WIDTH * 0.6, HEIGHT),
                  (WIDTH * 0.4, HEIGHT)), fill=(230, 230, 230))  # centre line
    return image


def _head(runner: DemoRunner, height: int, mirror: bool) -> tuple[Image.Image, Image.Image]:
    """The runner's portrait tinted to their skin, and an oval mask around the head."""
    portrait = _portrait(runner.face)
    width = round(height * portrait.width / portrait.height)
    grey = portrait.resize((width, height), Image.LANCZOS)
    if mirror:
        grey = ImageOps.mirror(grey)
    dark, light = SKIN_TONES[runner.skin]
    head = ImageOps.colorize(grey, black=dark, white=light)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse((width * 0.1, 0, width * 0.9, height * 0.98), fill=255)
    return head, mask.filter(ImageFilter.GaussianBlur(max(1, height // 60)))


def _draw_runner(image: Image.Image, appearance: Appearance, rng: random.Random) -> None:
    runner = RUNNER_BY_BIB[appearance.bib]
    # The portraits are head and shoulders: the face is about 55 % of the crop's height.
    face = appearance.face_height
    head_height = round(face / 0.55)
    centre = appearance.x * WIDTH
    head_top = int(HEIGHT * 0.2 + rng.uniform(-20, 20))
    chin = head_top + head_height * 0.80
    draw = ImageDraw.Draw(image)
    shirt, shorts = COLOURS[runner.shirt], COLOURS[runner.shorts]
    skin = SKIN_TONES[runner.skin][1]
    skin = _shade(skin, 0.85)

    shoulders = chin + face * 0.15
    waist = shoulders + face * 2.6
    half = face * 1.1
    lean = rng.uniform(-0.08, 0.08) * face
    # Legs and arms first: the shirt covers where they join.
    for side, swing in ((-1, rng.uniform(0.2, 0.6)), (1, -rng.uniform(0.2, 0.6))):
        hip = centre + side * half * 0.45
        draw.line((hip, waist, hip + swing * face * 1.2, HEIGHT + 10), fill=skin,
                  width=int(face * 0.45))
        shoulder = centre + side * half * 0.95
        elbow = (shoulder + side * face * 0.35, shoulders + face * 1.5)
        draw.line((shoulder, shoulders + face * 0.3, *elbow), fill=shirt, width=int(face * 0.42))
        draw.line((*elbow, elbow[0] - side * face * 0.6, elbow[1] - swing * face * 1.2),
                  fill=skin, width=int(face * 0.34))
    draw.rectangle((centre - half * 0.95, waist - face * 0.2, centre + half * 0.95,
                    waist + face * 1.0), fill=shorts)
    draw.polygon(((centre - half + lean, shoulders + face * 0.25),
                  (centre - half * 0.8 + lean, shoulders), (centre + half * 0.8 + lean, shoulders),
                  (centre + half + lean, shoulders + face * 0.25),
                  (centre + half * 0.88, waist), (centre - half * 0.88, waist)), fill=shirt)
    draw.rectangle((centre - face * 0.22, chin - face * 0.15, centre + face * 0.22,
                    shoulders + face * 0.15), fill=skin)  # neck

    head, mask = _head(runner, head_height, mirror=rng.random() < 0.3)
    image.paste(head, (int(centre - head.width / 2), head_top), mask)
    if runner.cap:
        cap = COLOURS[runner.cap]
        # Over the hair, down to the forehead: the eyes stay visible to the face detector.
        top = head_top + face * 0.05
        draw.chord((centre - head.width * 0.34, top, centre + head.width * 0.34,
                    top + face * 0.9), 180, 360, fill=cap)
        draw.rectangle((centre - head.width * 0.42, top + face * 0.38, centre + head.width * 0.12,
                        top + face * 0.47), fill=_shade(cap, 0.8))  # peak

    bib_width, bib_height = face * 1.55, face * 1.05
    bib_top = shoulders + face * 0.75
    box = (centre - bib_width / 2 + lean * 0.6, bib_top, centre + bib_width / 2 + lean * 0.6,
           bib_top + bib_height)
    bib = Image.new("RGBA", (int(bib_width), int(bib_height)), (250, 250, 248, 255))
    bib_draw = ImageDraw.Draw(bib)
    if not appearance.bib_turned:
        font = _font(int(face * 0.66))
        bib_draw.text((bib.width / 2, bib.height * 0.56), runner.bib, fill=(12, 12, 12),
                      font=font, anchor="mm")
        bib_draw.rectangle((0, 0, bib.width, bib.height * 0.14), fill=(200, 32, 45, 255))
    for px, py in ((0.07, 0.22), (0.93, 0.22), (0.07, 0.9), (0.93, 0.9)):  # safety pins
        r = max(2, face // 40)
        bib_draw.ellipse((bib.width * px - r, bib.height * py - r, bib.width * px + r,
                          bib.height * py + r), fill=(150, 150, 155, 255))
    bib = bib.rotate(rng.uniform(-6, 6), resample=Image.BICUBIC, expand=True)
    image.paste(bib, (int(box[0]), int(box[1])), bib)


def render(photo: DemoPhoto) -> Image.Image:
    """The photo's pixels (the same on every machine for a given Pillow)."""
    rng = random.Random(photo.number * 7919)
    image = _background(rng)
    # Farther runners (smaller faces) first, so nearer ones overlap them.
    for appearance in sorted(photo.runners, key=lambda a: a.face_height):
        _draw_runner(image, appearance, rng)
    return image.filter(ImageFilter.SMOOTH).resize(SIZE, Image.LANCZOS)


def jpeg_bytes(photo: DemoPhoto) -> bytes:
    """The photo as a camera would send it: JPEG with its capture time in EXIF."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "RacePhoto"
    exif[ExifTags.Base.Model] = "Demo"
    taken = FIRST_SHOT + timedelta(minutes=photo.number)
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = \
        taken.strftime("%Y:%m:%d %H:%M:%S")
    output = io.BytesIO()
    render(photo).save(output, "JPEG", quality=88, exif=exif)
    return output.getvalue()
