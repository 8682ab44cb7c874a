"""The Pillow renderer: real cards, opened back as PNGs and read pixel by pixel."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageFont

from herald_common.images.cards import MIN_FONT_SIZE, CardRenderer
from herald_common.images.fonts import FontBook
from herald_common.images.palette import BLACK, Palette, contrast, parse_color
from herald_common.images.spec import STYLES, ImageSpec
from tests.image.pictures import close, color_bbox, open_png

LIGHT = Palette.from_brand(
    {
        "primary": "#1d3557",
        "secondary": "#457b9d",
        "accent": "#e63946",
        "background": "#f1faee",
        "text": "#5a189a",
    }
)
DARK = Palette.from_brand(
    {
        "primary": "#e07a5f",
        "secondary": "#81b29a",
        "accent": "#f2cc8f",
        "background": "#3d405b",
        "text": "#fdfcdc",
    }
)
SIZES = [(1200, 627), (1080, 1350), (64, 64), (4096, 1024), (300, 1200)]
PROMPT = "Spring launch: our new oat-milk latte is here. Taste it this weekend at every store!"


@pytest.fixture(scope="module")
def renderer() -> CardRenderer:
    # No font directory: the bundled font, as on a machine without fonts.
    return CardRenderer(FontBook([]))


def margin_of(width: int, height: int) -> int:
    return max(4, round(min(width, height) * 0.08))


@pytest.mark.parametrize("palette", [LIGHT, DARK], ids=["light", "dark"])
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_card_is_a_png_of_the_exact_size_in_the_brand_colours_with_the_text_inside_margins(
    renderer, style, width, height, palette
) -> None:
    # Given a spec in a brand's colours
    spec = ImageSpec(PROMPT, style, width, height, palette, seed="job-1")

    # When it is rendered and the PNG opened
    image = open_png(renderer.render(spec))

    # Then it has exactly the size asked for
    assert image.size == (width, height)
    # and the brand's background at the top-left corner (a gradient's start: nearly exact)
    tolerance = 3 if style == "realistic" else 0
    assert close(image.getpixel((0, 0)), palette.background, tolerance), image.getpixel((0, 0))
    # and the brand's text colour, only inside the margins (text a few pixels high has no
    # pixel fully inked: on the smallest cards, nearly the colour)
    inked = color_bbox(image, palette.text, 0 if min(width, height) >= 200 else 60)
    assert inked is not None, "the text colour is nowhere"
    margin = margin_of(width, height)
    left, top, right, bottom = inked
    assert left >= margin and top >= margin, (inked, margin)
    assert right <= width - margin and bottom <= height - margin, (inked, margin)


@pytest.mark.parametrize("style", STYLES)
def test_the_text_is_drawn_where_the_layout_says_and_fills_its_area(renderer, style) -> None:
    # Given a short prompt on a landscape card
    spec = ImageSpec("Summer sale", style, 1200, 627, LIGHT, seed="job-2")

    # When it is drawn
    card = renderer.draw(spec)

    # Then the pixels in the text colour are those of the text, inside its area
    inked = color_bbox(card.image, LIGHT.text)
    assert inked is not None and card.text_bbox is not None
    area = card.text_area
    assert area.left <= inked[0] and area.top <= inked[1]
    assert inked[2] <= area.right and inked[3] <= area.bottom
    # and a short prompt is set large, not at the smallest size
    assert card.font_size > 40
    assert card.lines == ("Summer sale",)


def test_a_long_prompt_shrinks_to_fit_and_a_short_one_stays_large(renderer) -> None:
    # Given one short and one long prompt, on the same card
    short = renderer.draw(ImageSpec("Hello", "minimalist", 1080, 1080, LIGHT, seed="s"))
    long = renderer.draw(ImageSpec(PROMPT * 4, "minimalist", 1080, 1080, LIGHT, seed="s"))

    # Then the long one is set smaller, on more lines, and still inside the margins
    assert long.font_size < short.font_size
    assert len(long.lines) > 3
    inked = color_bbox(long.image, LIGHT.text)
    assert inked is not None
    assert inked[0] >= 86 and inked[1] >= 86 and inked[2] <= 1080 - 86 and inked[3] <= 1080 - 86


@pytest.mark.parametrize("style", STYLES)
def test_a_prompt_that_cannot_fit_is_cut_with_an_ellipsis_never_past_the_margins(
    renderer, style
) -> None:
    # Given the longest prompt on the smallest card
    prompt = ("Unbelievably " * 80)[:1000]
    card = renderer.draw(ImageSpec(prompt, style, 64, 64, LIGHT, seed="tiny"))

    # Then it is set at the smallest size and cut
    assert card.font_size == MIN_FONT_SIZE
    assert card.lines[-1].endswith("...")
    assert " ".join(card.lines).count("Unbelievably") < 80
    # and nothing of it is drawn outside the margins
    inked = color_bbox(card.image, LIGHT.text, 60)
    assert inked is not None
    assert inked[0] >= 5 and inked[1] >= 5 and inked[2] <= 59 and inked[3] <= 59


def test_a_word_wider_than_the_card_is_broken_instead_of_overflowing(renderer) -> None:
    card = renderer.draw(ImageSpec("W" * 120, "minimalist", 400, 400, LIGHT, seed="w"))

    assert len(card.lines) > 1
    assert "".join(card.lines) == "W" * 120
    inked = color_bbox(card.image, LIGHT.text)
    assert inked is not None and inked[2] <= 400 - 32


@pytest.mark.parametrize("style", STYLES)
def test_a_text_colour_that_would_not_read_on_the_background_falls_back_to_black_or_white(
    renderer, style
) -> None:
    # Given a brand whose text colour is nearly its background
    palette = Palette.from_brand({"background": "#ffffff", "text": "#f4f4f4", "primary": "#ffd6e0"})
    card = renderer.draw(ImageSpec("Read me", style, 600, 600, palette, seed="c"))

    # Then the text is black, which reads on white, and is drawn in its area
    assert card.text_color == BLACK
    assert contrast(card.text_color, palette.background) > 10
    inked = color_bbox(card.image, BLACK)
    assert inked is not None
    assert card.text_area.left <= inked[0] and inked[2] <= card.text_area.right


def test_the_same_job_renders_the_same_bytes_and_another_job_other_shapes(renderer) -> None:
    spec = ImageSpec(PROMPT, "abstract", 800, 600, LIGHT, seed="job-a")

    first, again = renderer.render(spec), renderer.render(spec)
    other = renderer.render(ImageSpec(PROMPT, "abstract", 800, 600, LIGHT, seed="job-b"))

    assert first == again
    assert other != first


def test_a_brand_without_a_background_colour_uses_its_primary() -> None:
    renderer = CardRenderer(FontBook([]))
    palette = Palette.from_brand({"primary": "#0a9396", "text": "#ffffff"})

    image = open_png(renderer.render(ImageSpec("Hi", "minimalist", 200, 100, palette, seed="p")))

    assert image.getpixel((0, 0)) == parse_color("#0a9396")


# --- fonts -----------------------------------------------------------------------------------


@pytest.fixture
def font_dir(tmp_path: Path) -> Path:
    """A font directory holding the bundled font under a brand's font names."""
    data = ImageFont.load_default(size=10).path.getvalue()  # type: ignore[union-attr]
    for name in ("Brandface-Regular.ttf", "Brandface-Bold.ttf", "Other Sans.otf"):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "Broken-Bold.ttf").write_bytes(b"not a font")
    return tmp_path


def test_fonts_are_found_by_name_in_the_font_dir(font_dir: Path) -> None:
    book = FontBook([font_dir])

    assert book.find("Brandface", bold=True) == font_dir / "Brandface-Bold.ttf"
    assert book.find("brand face") == font_dir / "Brandface-Regular.ttf"
    assert book.find("Other Sans") == font_dir / "Other Sans.otf"
    assert book.find("Nowhere") is None
    # A name is compared with the files found, never used as a path
    assert book.find("../../../etc/passwd") is None


def test_a_font_that_cannot_be_found_or_read_falls_back_to_the_bundled_one(font_dir: Path) -> None:
    book = FontBook([font_dir])

    found = book.load("Brandface", 24, bold=True)
    missing = book.load("Nowhere", 24)
    broken = book.load("Broken", 24, bold=True)

    assert isinstance(found, ImageFont.FreeTypeFont) and found.size == 24
    for font in (missing, broken):
        assert isinstance(font, ImageFont.FreeTypeFont)
        assert font.getname() == ("Aileron", "Regular")
        assert font.size == 24


def test_a_card_renders_in_a_brand_font_from_the_font_dir(font_dir: Path) -> None:
    renderer = CardRenderer(FontBook([font_dir]))
    spec = ImageSpec("Brand font", "cartoon", 500, 500, LIGHT, heading_font="Brandface", seed="f")

    image = open_png(renderer.render(spec))

    assert image.size == (500, 500)
    assert color_bbox(image, LIGHT.text) is not None
