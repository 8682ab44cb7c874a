"""Which sizes an image may have, and the presets that name them."""

from __future__ import annotations

import pytest

from herald_common.errors import InvalidInput
from herald_common.images.sizes import resolve_size


def fields(exc: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    return {e.field: e.reason for e in exc.value.errors}


@pytest.mark.parametrize(
    ("width", "height", "platform", "format", "expected"),
    [
        (1200, 627, None, None, (1200, 627)),
        (None, None, "instagram", None, (1080, 1080)),
        (None, None, "instagram", "portrait", (1080, 1350)),
        (None, None, "instagram", "story", (1080, 1920)),
        (None, None, "x", None, (1600, 900)),
        (None, None, "linkedin", None, (1200, 627)),
        (None, None, None, "story", (1080, 1920)),
        (None, None, None, None, (1080, 1080)),
        # width and height win over a preset
        (800, 800, "x", "landscape", (800, 800)),
        (64, 256, None, None, (64, 256)),
        (4096, 1024, None, None, (4096, 1024)),
        (4096, 4096, None, None, (4096, 4096)),
    ],
)
def test_the_size_asked_for(width, height, platform, format, expected) -> None:
    assert resolve_size(width, height, platform, format) == expected


@pytest.mark.parametrize(
    ("width", "height", "platform", "format", "errors"),
    [
        (63, 100, None, None, {"width": "must be between 64 and 4096 pixels"}),
        (100, 4097, None, None, {"height": "must be between 64 and 4096 pixels"}),
        (1000, 249, None, None, {"width": "must be at most 4 times the height"}),
        (100, 401, None, None, {"height": "must be at most 4 times the width"}),
        (1000, None, None, None, {"height": "is required when width is given"}),
        (None, 1000, None, None, {"width": "is required when height is given"}),
        (
            None,
            None,
            "x",
            "story",
            {"format": "x has no story preset (landscape, square, portrait)"},
        ),
        (
            None,
            None,
            "myspace",
            None,
            {
                "platform": "must be one of instagram, facebook, x, linkedin, threads, tiktok, bluesky, mastodon"
            },
        ),
    ],
)
def test_a_size_that_breaks_a_rule_names_the_field(width, height, platform, format, errors) -> None:
    with pytest.raises(InvalidInput) as raised:
        resolve_size(width, height, platform, format)

    assert fields(raised) == errors
