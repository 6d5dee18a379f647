"""An event's accent colour on its public pages, kept readable whatever the organiser picks.

The site's ``--accent`` colours links on white and on its light grey panels, and the
background of primary buttons under white text (static/css/site.css), so it needs 4.5:1
contrast with all of them (WCAG AA for body text). An organiser's colour often has less (a
club's yellow, a sponsor's light blue): :func:`palette` keeps its hue and darkens it until it
reads, and picks the text colour that goes on the colour as it was chosen (the band at the
top of the event page; a mid grey, on which neither white nor dark text reads, gives its
band its readable shade). Pure functions, no Django.
"""

import re
from dataclasses import dataclass

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
#: WCAG 2 AA for normal text
MIN_TEXT_CONTRAST = 4.5
WHITE, DARK_TEXT, SURFACE = "#ffffff", "#1b1f24", "#f4f5f7"  # the site's --bg, --fg, --surface
#: links also sit on the site's light grey panels (--surface) and on the accent's own tint:
#: 5:1 on white keeps them above 4.5:1 there
ACCENT_ON_WHITE = 5.0


def _channels(colour: str) -> tuple[float, float, float]:
    if not HEX_COLOUR.match(colour):
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))


def _hex(channels) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, value)) * 255):02x}" for value in channels)


def relative_luminance(colour: str) -> float:
    """WCAG 2's relative luminance of a ``#rrggbb`` colour (0 black .. 1 white)."""
    def linear(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4
    red, green, blue = (linear(value) for value in _channels(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    """WCAG 2's contrast ratio of two colours (1 .. 21)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)),
                             reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _shade(colour: str, factor: float) -> str:
    """``colour`` with every channel scaled by ``factor`` (< 1 darkens, keeping the hue)."""
    return _hex(value * factor for value in _channels(colour))


def _tint(colour: str, amount: float) -> str:
    """``colour`` mixed with white (``amount`` 1 = white)."""
    return _hex(value + (1 - value) * amount for value in _channels(colour))


def readable_on_white(colour: str, minimum: float = MIN_TEXT_CONTRAST) -> str:
    """The shade of ``colour`` closest to it that reads on white with ``minimum`` contrast."""
    colour = colour.lower()
    if contrast(colour, WHITE) >= minimum:
        return colour
    low, high = 0.0, 1.0  # scale factors: low always reads (black), high does not
    for _step in range(24):
        middle = (low + high) / 2
        if contrast(_shade(colour, middle), WHITE) >= minimum:
            low = middle
        else:
            high = middle
    return _shade(colour, low)


@dataclass(frozen=True)
class Palette:
    chosen: str        # the organiser's colour
    band: str          # the band at the top of the event page: the colour as chosen, unless
                       # no text reads on it (a mid grey), then its readable shade
    on_band: str       # text on the band: white or the site's dark text, the more readable
    accent: str        # links and primary buttons (4.5:1 with white)
    accent_dark: str   # their hover shade
    accent_bg: str     # a light tint behind accented panels

    @property
    def css(self) -> str:
        """Custom properties for a ``style`` attribute (the site's tokens, overridden)."""
        return (f"--accent:{self.accent};--accent-dark:{self.accent_dark};"
                f"--accent-bg:{self.accent_bg};--event-colour:{self.band};"
                f"--on-event-colour:{self.on_band}")


def palette(colour: str) -> Palette:
    colour = colour.lower()
    accent = readable_on_white(colour, ACCENT_ON_WHITE)
    band, on_band = colour, max((WHITE, DARK_TEXT), key=lambda text: contrast(colour, text))
    if contrast(band, on_band) < MIN_TEXT_CONTRAST:
        band, on_band = accent, WHITE
    # The hover shade is darker still; the tint stays light enough for dark text and links.
    return Palette(chosen=colour, band=band, on_band=on_band, accent=accent,
                   accent_dark=_shade(accent, 0.78), accent_bg=_tint(accent, 0.95))
