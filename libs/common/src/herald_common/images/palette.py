"""A brand's colours as an image uses them, and which text colour reads on a background."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

RGB = tuple[int, int, int]

_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")
BLACK: RGB = (17, 17, 17)
WHITE: RGB = (255, 255, 255)
#: WCAG 2's AA contrast for large text: a card's text is always large.
MIN_CONTRAST = 3.0


def parse_color(value: object) -> RGB | None:
    """`#rrggbb` (or `#rgb`) as an RGB triple; None for anything else."""
    if not isinstance(value, str) or not (match := _HEX.match(value.strip())):
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def hex_color(rgb: RGB) -> str:
    """`#rrggbb`."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """`a` moved the fraction `t` of the way to `b`."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def luminance(rgb: RGB) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio, 1 (the same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def readable_on(background: RGB, preferred: RGB) -> RGB:
    """`preferred` when it reads on `background` (MIN_CONTRAST), else black or white,
    whichever reads better."""
    if contrast(preferred, background) >= MIN_CONTRAST:
        return preferred
    return max((BLACK, WHITE), key=lambda c: contrast(c, background))


@dataclass(frozen=True)
class Palette:
    """The five colour roles of a brand, each settled to an RGB triple."""

    background: RGB
    primary: RGB
    secondary: RGB
    accent: RGB
    text: RGB

    @classmethod
    def from_brand(cls, colors: Mapping[str, object] | None) -> Palette:
        """A brand's `colors`, with Herald's defaults for roles it leaves out or spells
        wrongly. Without a background colour the primary one is the background."""
        colors = colors or {}
        given = {role: parse_color(colors.get(role)) for role in _ROLES}
        primary = given["primary"] or DEFAULT.primary
        background = given["background"] or given["primary"] or DEFAULT.background
        secondary = given["secondary"] or mix(primary, WHITE, 0.45)
        accent = given["accent"] or DEFAULT.accent
        text = given["text"] or DEFAULT.text
        return cls(background, primary, secondary, accent, text)

    def describe(self) -> str:
        """The palette in words, for a prompt."""
        return ", ".join(f"{role} {hex_color(getattr(self, role))}" for role in _ROLES)


_ROLES = ("background", "primary", "secondary", "accent", "text")

#: The palette of an image without a brand.
DEFAULT = Palette(
    background=(245, 243, 238),
    primary=(31, 78, 121),
    secondary=(74, 144, 194),
    accent=(242, 165, 65),
    text=(27, 27, 27),
)
