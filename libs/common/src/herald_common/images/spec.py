"""What to render, and what renders it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from herald_common.images.palette import Palette

Style = Literal["realistic", "cartoon", "abstract", "minimalist"]
STYLES: tuple[Style, ...] = ("realistic", "cartoon", "abstract", "minimalist")


@dataclass(frozen=True)
class ImageSpec:
    """One image to make: the prompt, its style and exact size, and the brand's look.

    `seed` makes a render repeatable: the same spec gives the same pixels.
    """

    prompt: str
    style: Style
    width: int
    height: int
    palette: Palette
    heading_font: str | None = None
    seed: str = ""


class Renderer(Protocol):
    """Makes the PNG bytes of a spec, exactly `width` × `height`."""

    name: str

    def render(self, spec: ImageSpec) -> bytes: ...
