"""Reading rendered PNGs back: where a colour is, what a pixel is."""

from __future__ import annotations

import io

from PIL import Image, ImageChops

RGB = tuple[int, int, int]


def open_png(data: bytes) -> Image.Image:
    """The PNG in `data`, checked to be one, as RGB."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image.convert("RGB")


def color_bbox(
    image: Image.Image, color: RGB, tolerance: int = 0
) -> tuple[int, int, int, int] | None:
    """The box (left, top, right, bottom; right and bottom exclusive) of every pixel within
    `tolerance` of `color` on each channel; None when there is none."""
    difference = ImageChops.difference(image, Image.new("RGB", image.size, color))
    red, green, blue = difference.split()
    largest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return largest.point(lambda v: 255 if v <= tolerance else 0).getbbox()


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))
