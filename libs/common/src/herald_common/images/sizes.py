"""The dimensions an image may have, and the platform presets that name common ones."""

from __future__ import annotations

from typing import Literal

from herald_common.errors import FieldError, InvalidInput

MIN_SIDE = 64
MAX_SIDE = 4096
#: Neither side may be more than this many times the other (a 1:4 story strip at most).
MAX_ASPECT = 4.0
#: The side limits imply it today; it stays so that raising MAX_SIDE cannot let a render of
#: 64 megapixels through (memory grows with the pixels, about 20 bytes each while rendering).
MAX_PIXELS = 4096 * 4096

Format = Literal["square", "portrait", "landscape", "story"]
FORMATS: tuple[Format, ...] = ("square", "portrait", "landscape", "story")

#: Sizes each platform recommends; the first format of a platform is its default.
PRESETS: dict[str, dict[Format, tuple[int, int]]] = {
    "instagram": {
        "square": (1080, 1080),
        "portrait": (1080, 1350),
        "landscape": (1080, 566),
        "story": (1080, 1920),
    },
    "facebook": {
        "landscape": (1200, 630),
        "square": (1080, 1080),
        "portrait": (1080, 1350),
        "story": (1080, 1920),
    },
    "x": {"landscape": (1600, 900), "square": (1080, 1080), "portrait": (1080, 1350)},
    "linkedin": {"landscape": (1200, 627), "square": (1200, 1200), "portrait": (1080, 1350)},
    "threads": {"portrait": (1080, 1350), "square": (1080, 1080), "landscape": (1080, 566)},
    "tiktok": {"story": (1080, 1920), "portrait": (1080, 1350)},
    "bluesky": {"landscape": (1600, 900), "square": (1080, 1080), "portrait": (1080, 1350)},
    "mastodon": {"landscape": (1600, 900), "square": (1080, 1080), "portrait": (1080, 1350)},
}
#: A format asked for without a platform.
GENERIC: dict[Format, tuple[int, int]] = {
    "square": (1080, 1080),
    "portrait": (1080, 1350),
    "landscape": (1600, 900),
    "story": (1080, 1920),
}
DEFAULT_SIZE = GENERIC["square"]


def resolve_size(
    width: int | None,
    height: int | None,
    platform: str | None = None,
    format: Format | None = None,
) -> tuple[int, int]:
    """The size asked for: `width` and `height` when given (they win over a preset), else the
    platform's preset in `format` (or its default format), else the format's generic size,
    else 1080×1080. InvalidInput naming the field when the result breaks a rule."""
    if (width is None) != (height is None):
        missing = "height" if height is None else "width"
        given = "width" if missing == "height" else "height"
        raise InvalidInput(FieldError(missing, f"is required when {given} is given"))
    if width is not None and height is not None:
        size = (width, height)
    elif platform is not None:
        presets = PRESETS.get(platform)
        if presets is None:
            raise InvalidInput(FieldError("platform", f"must be one of {', '.join(PRESETS)}"))
        chosen = format or next(iter(presets))
        if chosen not in presets:
            raise InvalidInput(
                FieldError("format", f"{platform} has no {chosen} preset ({', '.join(presets)})")
            )
        size = presets[chosen]
    elif format is not None:
        size = GENERIC[format]
    else:
        size = DEFAULT_SIZE
    check_size(*size)
    return size


def size_errors(width: int, height: int) -> list[FieldError]:
    """The rules `width` × `height` breaks, each naming its field."""
    errors = [
        FieldError(name, f"must be between {MIN_SIDE} and {MAX_SIDE} pixels")
        for name, value in (("width", width), ("height", height))
        if not MIN_SIDE <= value <= MAX_SIDE
    ]
    if errors:
        return errors
    if width > height * MAX_ASPECT:
        errors.append(FieldError("width", f"must be at most {MAX_ASPECT:g} times the height"))
    elif height > width * MAX_ASPECT:
        errors.append(FieldError("height", f"must be at most {MAX_ASPECT:g} times the width"))
    if width * height > MAX_PIXELS:
        errors.append(FieldError("width", f"width × height must be at most {MAX_PIXELS:,} pixels"))
    return errors


def check_size(width: int, height: int) -> None:
    """InvalidInput naming the field when `width` × `height` breaks a rule."""
    if errors := size_errors(width, height):
        raise InvalidInput(errors)
