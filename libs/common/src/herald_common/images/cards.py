"""The default renderer: a post card drawn with Pillow, offline and repeatable.

Every card is the brand's background (its `background` colour, else its primary), a few shapes
by style, and the prompt set in the brand's heading font and text colour:

- realistic   a soft gradient towards the primary colour, out-of-focus light in the secondary
              and accent colours, and a glow in the middle that fades to the edges (a vignette)
- cartoon     a sun and hills in flat colours with bold outlines, the text on an outlined panel
- abstract    translucent circles and polygons placed by the prompt and seed, inside a frame
- minimalist  the background alone, with one accent bar above the text, set from the top left

The text is wrapped to the text area, which lies inside margins of 8 % of the shorter side, at
the largest size that fits (never larger than 16 % of the shorter side); when even the smallest
size cannot hold the prompt, it is cut with an ellipsis, never drawn past the margins. When
the brand's text colour would not read on what is behind the text (WCAG contrast below 3:1,
the large-text level), black or white is used instead, whichever reads better. The top-left
corner always shows the background colour unmixed. The random choices are seeded from the
spec's seed (the job id), style and prompt: the same job renders the same pixels.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageDraw, ImageFilter, ImageOps, ImageStat

from herald_common.images.fonts import Font, FontBook
from herald_common.images.palette import RGB, WHITE, contrast, luminance, mix, readable_on
from herald_common.images.spec import ImageSpec

MARGIN = 0.08
MAX_TEXT = 0.16  # the largest text size, as a fraction of the shorter side
MIN_FONT_SIZE = 8  # below this, text is a smudge
ELLIPSIS = "..."
Align = Literal["left", "center"]  # the lines; "left" also sets the block at the top


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels: left and top inside it, right and bottom just past it."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def inset(self, by: int) -> Box:
        """The box shrunk by `by` on every side (never below one pixel)."""
        by = max(0, min(by, (self.width - 1) // 2, (self.height - 1) // 2))
        return Box(self.left + by, self.top + by, self.right - by, self.bottom - by)


@dataclass(frozen=True)
class Card:
    """A rendered card, with where its text may go and where it went."""

    image: Image.Image
    margin: int
    text_area: Box
    text_bbox: Box | None
    text_color: RGB
    font_size: int
    lines: tuple[str, ...]


class CardRenderer:
    """Renders an ImageSpec as a Pillow post card (PNG)."""

    name = "pillow"

    def __init__(self, fonts: FontBook) -> None:
        self._fonts = fonts

    def render(self, spec: ImageSpec) -> bytes:
        """The card's PNG bytes."""
        return png_bytes(self.draw(spec).image)

    def draw(self, spec: ImageSpec) -> Card:
        """The card as an image, with its layout."""
        width, height = spec.width, spec.height
        margin = max(4, round(min(width, height) * MARGIN))
        frame = Box(margin, margin, width - margin, height - margin)
        image, area, align = _PAINTERS[spec.style](spec, frame, _rng(spec))
        behind = tuple(round(v) for v in ImageStat.Stat(image.crop(_xy(area))).mean[:3])
        color = readable_on(behind, spec.palette.text)  # type: ignore[arg-type]
        cap = max(MIN_FONT_SIZE, round(min(width, height) * MAX_TEXT))
        layout = fit_text(
            spec.prompt,
            area,
            lambda size: self._fonts.load(spec.heading_font, size, bold=True),
            cap,
        )
        bbox = layout.draw(ImageDraw.Draw(image), area, color, align)
        return Card(image, margin, area, bbox, color, layout.size, tuple(layout.lines))


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG (Pillow writes no timestamp: the same pixels give the same bytes)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


# --- text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Lines of text at one size, and how far they reach from the first line's origin."""

    font: Font
    size: int
    lines: list[str]
    pitch: int
    top: int
    bottom: int
    width: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def fits(self, area: Box) -> bool:
        return self.width <= area.width and self.height <= area.height

    def draw(self, draw: ImageDraw.ImageDraw, area: Box, color: RGB, align: Align) -> Box | None:
        """Draw the lines in `area` (centred, or from its top-left); the box of their pixels."""
        spare = 0 if align == "left" else (area.height - self.height) // 2
        y0 = area.top + spare - self.top
        covered: Box | None = None
        for number, line in enumerate(self.lines):
            if not line:
                continue
            left, _, right, _ = self.font.getbbox(line)
            x = area.left - left
            if align == "center":
                x += (area.width - (right - left)) // 2
            y = y0 + number * self.pitch
            draw.text((x, y), line, font=self.font, fill=color)
            ink = Box(*(int(v) for v in draw.textbbox((x, y), line, font=self.font)))
            covered = ink if covered is None else _union(covered, ink)
        return covered


def fit_text(text: str, area: Box, load: Callable[[int], Font], largest: int) -> Layout:
    """The prompt at the largest size from MIN_FONT_SIZE to `largest` that fits `area`; at the
    smallest size, cut to the lines that fit, the last one ending in an ellipsis."""
    low, high = MIN_FONT_SIZE, max(MIN_FONT_SIZE, min(largest, area.height))
    best: Layout | None = None
    while low <= high:
        size = (low + high) // 2
        layout = _layout(text, load(size), size, area.width)
        if layout.fits(area):
            best, low = layout, size + 1
        else:
            high = size - 1
    return best or _cut(text, load(MIN_FONT_SIZE), MIN_FONT_SIZE, area)


def _layout(text: str, font: Font, size: int, max_width: int) -> Layout:
    lines: list[str] = []
    for paragraph in text.strip().splitlines():
        lines += _wrap(paragraph, font, max_width) if paragraph.strip() else [""]
    return _measure(font, size, lines)


def _measure(font: Font, size: int, lines: list[str]) -> Layout:
    ascent, descent = _metrics(font, size)
    pitch = ascent + descent + max(1, round(size * 0.08))
    top, bottom, width = 0, 0, 0
    first = True
    for number, line in enumerate(lines):
        if not line:
            continue
        left, line_top, right, line_bottom = font.getbbox(line)
        offset = number * pitch
        top = int(offset + line_top) if first else min(top, int(offset + line_top))
        bottom = int(offset + line_bottom) if first else max(bottom, int(offset + line_bottom))
        width = max(width, int(right - left))
        first = False
    return Layout(font, size, lines, pitch, top, bottom, width)


def _metrics(font: Font, size: int) -> tuple[int, int]:
    getmetrics = getattr(font, "getmetrics", None)
    if getmetrics is None:  # Pillow without FreeType: a bitmap font
        return size, max(1, size // 4)
    ascent, descent = getmetrics()
    return int(ascent), int(descent)


def _width(font: Font, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _wrap(paragraph: str, font: Font, max_width: int) -> list[str]:
    """Greedy wrapping by words; a word wider than the line is broken between characters."""
    lines: list[str] = []
    current = ""
    for word in paragraph.split():
        candidate = f"{current} {word}" if current else word
        if _width(font, candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        if _width(font, word) <= max_width:
            current = word
            continue
        for char in word:
            if current and _width(font, current + char) > max_width:
                lines.append(current)
                current = ""
            current += char
    if current:
        lines.append(current)
    return lines


def _cut(text: str, font: Font, size: int, area: Box) -> Layout:
    """As many wrapped lines as fit, the last one ending in an ellipsis."""
    lines = _layout(text, font, size, area.width).lines
    while lines:
        kept = lines[:-1] if len(lines) > 1 else []
        last = lines[-1].rstrip()
        while last and _width(font, last + ELLIPSIS) > area.width:
            last = last[:-1].rstrip()
        candidate = _measure(font, size, [*kept, last + ELLIPSIS])
        if candidate.fits(area):
            return candidate
        lines = kept
    return _measure(font, size, [])  # not even an ellipsis fits: no text


def _union(a: Box, b: Box) -> Box:
    return Box(
        min(a.left, b.left), min(a.top, b.top), max(a.right, b.right), max(a.bottom, b.bottom)
    )


def _xy(box: Box) -> tuple[int, int, int, int]:
    return (box.left, box.top, box.right, box.bottom)


# --- styles -------------------------------------------------------------------------------

Painter = Callable[[ImageSpec, Box, random.Random], tuple[Image.Image, Box, Align]]


def _rng(spec: ImageSpec) -> random.Random:
    digest = hashlib.sha256(f"{spec.seed}\n{spec.style}\n{spec.prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _visible(color: RGB, background: RGB, *fallbacks: RGB) -> RGB:
    """`color`, or the first fallback that stands out from `background`."""
    for candidate in (color, *fallbacks):
        if contrast(candidate, background) >= 1.5:
            return candidate
    return readable_on(background, color)


def _minimalist(spec: ImageSpec, frame: Box, rng: random.Random) -> tuple[Image.Image, Box, Align]:
    palette = spec.palette
    image = Image.new("RGB", (spec.width, spec.height), palette.background)
    unit = min(spec.width, spec.height)
    bar_height = max(2, round(unit * 0.022))
    bar_width = max(8, round(frame.width * 0.22))
    bar = _visible(palette.accent, palette.background, palette.primary, palette.text)
    ImageDraw.Draw(image).rectangle(
        (frame.left, frame.top, frame.left + bar_width - 1, frame.top + bar_height - 1), fill=bar
    )
    gap = max(2, bar_height * 2)
    area = Box(
        frame.left, min(frame.top + bar_height + gap, frame.bottom - 1), frame.right, frame.bottom
    )
    return image, area, "left"


def _realistic(spec: ImageSpec, frame: Box, rng: random.Random) -> tuple[Image.Image, Box, Align]:
    palette = spec.palette
    size = (spec.width, spec.height)
    # A vertical gradient whose first row is the background itself.
    rows = bytes(round(255 * (y / max(1, spec.height - 1)) ** 1.4) for y in range(spec.height))
    mask = Image.frombytes("L", (1, spec.height), rows).resize(size, Image.Resampling.NEAREST)
    lower = Image.new("RGB", size, mix(palette.background, palette.primary, 0.45))
    image = Image.composite(lower, Image.new("RGB", size, palette.background), mask)
    # Out-of-focus light: drawn small, blurred, enlarged (cheap at any size), kept away from
    # the top-left.
    small = (max(16, spec.width // 8), max(16, spec.height // 8))
    unit = min(small)
    bokeh = Image.new("RGBA", small, (0, 0, 0, 0))
    for color in (palette.secondary, palette.accent, mix(palette.primary, WHITE, 0.3)):
        layer = Image.new("RGBA", small, (0, 0, 0, 0))
        cx, cy = rng.uniform(0.5, 1.0) * small[0], rng.uniform(0.45, 1.0) * small[1]
        radius = rng.uniform(0.14, 0.26) * unit
        ImageDraw.Draw(layer).ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius),
            fill=(*color, rng.randint(70, 110)),
        )
        bokeh = Image.alpha_composite(bokeh, layer)
    bokeh = bokeh.filter(ImageFilter.GaussianBlur(unit * 0.07)).resize(
        size, Image.Resampling.BICUBIC
    )
    image = Image.alpha_composite(image.convert("RGBA"), bokeh).convert("RGB")
    # The vignette: light in the middle fading to nothing before the corners.
    glow = ImageOps.invert(Image.radial_gradient("L")).point(lambda v: int(v * 0.3))
    glow_color = mix(palette.background, WHITE, 0.5 if luminance(palette.background) < 0.5 else 0.8)
    image = Image.composite(
        Image.new("RGB", size, glow_color), image, glow.resize(size, Image.Resampling.BILINEAR)
    )
    return image, frame, "center"


def _cartoon(spec: ImageSpec, frame: Box, rng: random.Random) -> tuple[Image.Image, Box, Align]:
    palette = spec.palette
    width, height = spec.width, spec.height
    image = Image.new("RGB", (width, height), palette.background)
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    outline = max(2, round(unit * 0.012))
    ink = mix(palette.primary, (0, 0, 0), 0.75)
    # The sun, top right above the panel, with rays.
    sx, sy, sr = width * 0.84, height * 0.13, unit * 0.09
    for ray in range(8):
        angle = ray * math.pi / 4 + rng.uniform(-0.15, 0.15)
        inner, outer = sr * 1.25, sr * 1.6
        draw.line(
            (
                sx + inner * math.cos(angle),
                sy + inner * math.sin(angle),
                sx + outer * math.cos(angle),
                sy + outer * math.sin(angle),
            ),
            fill=ink,
            width=outline,
        )
    draw.ellipse(
        (sx - sr, sy - sr, sx + sr, sy + sr), fill=palette.accent, outline=ink, width=outline
    )
    # Two hills along the bottom.
    for cx, rx, ry, color in (
        (width * rng.uniform(0.15, 0.3), width * 0.45, height * 0.26, palette.secondary),
        (width * rng.uniform(0.7, 0.85), width * 0.5, height * 0.3, palette.primary),
    ):
        cy = height * 1.08
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=color, outline=ink, width=outline)
    # Confetti, never near the top-left corner.
    for _ in range(rng.randint(4, 7)):
        x, y = rng.uniform(0.15, 0.95) * width, rng.uniform(0.1, 0.9) * height
        r = unit * rng.uniform(0.015, 0.03)
        color = rng.choice((palette.accent, palette.secondary, palette.primary))
        points = [
            (x + r * math.cos(a), y + r * math.sin(a))
            for a in (rng.uniform(0, math.tau) + k * math.tau / 3 for k in range(3))
        ]
        draw.polygon(points, fill=color, outline=ink, width=max(1, outline // 2))
    # The text's panel, with a hard shadow.
    radius = max(2, round(unit * 0.05))
    top = max(frame.top, round(height * 0.22))
    bottom = min(frame.bottom, max(top + 8, round(height * 0.74)))
    shadow = outline * 2
    panel = Box(frame.left, top, frame.right - shadow, bottom - shadow)
    draw.rounded_rectangle(
        (panel.left + shadow, panel.top + shadow, panel.right + shadow, panel.bottom + shadow),
        radius=radius,
        fill=ink,
    )
    draw.rounded_rectangle(
        _xy(panel), radius=radius, fill=palette.background, outline=ink, width=outline
    )
    padding = outline + max(2, round(unit * 0.03))
    return image, panel.inset(padding), "center"


def _abstract(spec: ImageSpec, frame: Box, rng: random.Random) -> tuple[Image.Image, Box, Align]:
    palette = spec.palette
    width, height = spec.width, spec.height
    image = Image.new("RGBA", (width, height), (*palette.background, 255))
    unit = min(width, height)
    colors = (palette.primary, palette.secondary, palette.accent)
    for _ in range(rng.randint(6, 10)):
        color = rng.choice(colors)
        fill = (*color, rng.randint(90, 160))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.12, 0.35) * unit
        left, top = max(0, int(cx - radius * 1.3)), max(0, int(cy - radius * 1.3))
        right = min(width, math.ceil(cx + radius * 1.3))
        bottom = min(height, math.ceil(cy + radius * 1.3))
        if right - left < 1 or bottom - top < 1:
            continue
        # Each shape on its own small layer, so overlaps blend instead of replacing.
        layer = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        x, y = cx - left, cy - top
        if rng.random() < 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
        else:
            corners = rng.randint(3, 6)
            start = rng.uniform(0, math.tau)
            points = [
                (
                    x + radius * rng.uniform(0.75, 1.3) * math.cos(start + k * math.tau / corners),
                    y + radius * rng.uniform(0.75, 1.3) * math.sin(start + k * math.tau / corners),
                )
                for k in range(corners)
            ]
            draw.polygon(points, fill=fill)
        image.alpha_composite(layer, dest=(left, top))
    draw = ImageDraw.Draw(image)
    # A frame of plain background around the shapes.
    band = max(2, frame.left // 2)
    for box in (
        (0, 0, width, band),
        (0, height - band, width, height),
        (0, 0, band, height),
        (width - band, 0, width, height),
    ):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=(*palette.background, 255))
    # A veil behind the text, so the shapes do not fight it.
    veil = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(veil).rounded_rectangle(
        _xy(frame), radius=max(2, round(unit * 0.04)), fill=(*palette.background, 185)
    )
    image = Image.alpha_composite(image, veil).convert("RGB")
    return image, frame.inset(max(2, round(unit * 0.03))), "center"


_PAINTERS: dict[str, Painter] = {
    "realistic": _realistic,
    "cartoon": _cartoon,
    "abstract": _abstract,
    "minimalist": _minimalist,
}
