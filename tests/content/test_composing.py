"""A post's parts, their composition, and cutting them to fit the platforms' own rules."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from herald_common.content.composing import (
    Part,
    Parts,
    TextRules,
    compose,
    normalize_hashtag,
    parts_of,
    shorten,
)
from herald_common.db import session_scope
from herald_common.models import Account
from herald_common.platforms import PlatformRegistry
from herald_common.platforms.bluesky import MAX_GRAPHEMES
from herald_common.platforms.http import grapheme_length
from herald_common.platforms.x import weighted_length


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """Only the registry needs a database here (the sandbox adapter keeps what it is sent)."""
    return sqlite_engine


BODY = (
    "Start with the result you want, then work backwards. Every step should earn its place. "
    "Measure one thing, change one thing, and check again in a week. Keep what works, drop "
    "what doesn't, and write both down. It is less exciting than a big launch, and it works "
    "far more often than one."
)


def test_compose_puts_a_blank_line_between_the_parts_it_has() -> None:
    assert compose("Hook.", "Body.", ["#a", "#b"]) == "Hook.\n\nBody.\n\n#a #b"
    assert compose("", "Body.", []) == "Body."
    assert compose(" Hook. ", "", ["#a"]) == "Hook.\n\n#a"


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        ("coffee", "#coffee"),
        ("#Coffee", "#Coffee"),
        ("＃café", "#café"),
        (" #latte_art ", "#latte_art"),
    ],
)
def test_hashtags_are_normalised_with_or_without_the_sign(raw: str, tag: str) -> None:
    assert normalize_hashtag(raw) == tag


@pytest.mark.parametrize("raw", ["", "#", "two words", "#dash-ed", "x" * 101])
def test_what_is_not_one_word_is_not_a_hashtag(raw: str) -> None:
    assert normalize_hashtag(raw) is None


def test_stored_parts_are_used_while_they_compose_the_text() -> None:
    parts = Parts("Hook.", "Body.", ("#a",), topic="coffee")
    assert parts_of(parts.text(), parts.as_dict()) == parts


def test_parts_are_read_back_from_a_text_edited_by_hand() -> None:
    # Given parts whose body a person has since changed in the text
    stored = Parts("Hook.", "Body.", ("#a", "#b"), topic="coffee").as_dict()
    edited = "Hook.\n\nA better body.\n\nSecond paragraph.\n\n#a #b"

    # Then the hook, body and hashtags come from the text; the topic from what was stored
    assert parts_of(edited, stored) == Parts(
        "Hook.", "A better body.\n\nSecond paragraph.", ("#a", "#b"), topic="coffee"
    )
    # and a single paragraph is all body
    assert parts_of("Just one paragraph.", None) == Parts("", "Just one paragraph.", ())


def test_the_budget_is_the_strictest_platform_and_account(
    registry: PlatformRegistry, engine: Engine, tenant_id: str
) -> None:
    # Given a sandbox account that takes 120 characters
    with session_scope(engine) as session:
        small = Account(
            tenant_id=tenant_id, platform="sandbox", handle="s", settings={"max_length": 120}
        )
        session.add(small)

    # Then X and Bluesky together take 280, Mastodon alone 500, and the account 120
    assert TextRules.of(registry, ["x", "bluesky"]).budget() == 280
    assert TextRules.of(registry, ["mastodon"]).budget() == 500
    assert TextRules.of(registry, ["mastodon"], [small]).budget() == 120


def test_hashtags_go_first_when_a_post_is_too_long(registry: PlatformRegistry) -> None:
    # Given parts 8 characters too long for X with their hashtags
    rules = TextRules.of(registry, ["x"])
    hook = "A hook."
    body = "word " * ((280 - len(hook) - len("\n\n#one #two") - 2) // 5)
    parts = Parts(hook, body.strip() + " more", ("#one", "#two"))
    assert not rules.fits(parts.text())

    # When they are shortened
    short = shorten(parts, rules)

    # Then a hashtag went and the body is whole
    assert short is not None and rules.fits(short.text())
    assert short.body == parts.body
    assert short.hashtags in (("#one",), ())


def test_a_long_body_is_cut_after_a_whole_word(registry: PlatformRegistry) -> None:
    rules = TextRules.of(registry, ["x", "bluesky"])
    parts = Parts("Three things we learned this week.", BODY * 2, ())

    short = shorten(parts, rules)

    assert short is not None
    text = short.text()
    assert weighted_length(text) <= 280 and grapheme_length(text) <= MAX_GRAPHEMES
    assert short.hook == parts.hook
    # every word kept is a whole word of the original body, in order
    kept = short.body.rstrip("…").split()
    assert kept == parts.body.split()[: len(kept)]
    assert len(kept) > 10


def test_only_the_part_asked_for_is_cut(registry: PlatformRegistry) -> None:
    # Given a body and hashtags that fit, and a new hook that makes the post too long
    rules = TextRules.of(registry, ["x"])
    parts = Parts("Hook " * 60, "A body that must stay as it is.", ("#keep",))

    # When only the hook may change
    hook_only: tuple[Part, ...] = ("hook",)
    short = shorten(parts, rules, hook_only)

    # Then the body and hashtags are as they were
    assert short is not None and rules.fits(short.text())
    assert (short.body, short.hashtags) == (parts.body, parts.hashtags)
    assert short.hook.endswith("…")


def test_nothing_can_fit_returns_none(registry: PlatformRegistry) -> None:
    rules = TextRules.of(registry, ["x"])
    parts = Parts("fine", "x" * 400, ())

    hook_only: tuple[Part, ...] = ("hook",)
    assert shorten(parts, rules, hook_only) is None


def test_media_rules_are_not_the_writers_concern(registry: PlatformRegistry) -> None:
    # Instagram and TikTok need media; a draft's text is still judged by its length alone
    rules = TextRules.of(registry, ["instagram", "tiktok"])
    assert rules.fits("A caption without its image yet.")
    assert rules.problems("#a " * 31)  # Instagram's 30 hashtags is a text rule
