"""The writers: the template writer's posts read well and fit; the OpenAI-compatible writer
is asked again when its answer is malformed and classifies its service's failures."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.engine import Engine

from herald_common.content.composing import Parts, TextRules
from herald_common.content.writers import (
    Brief,
    NoUsableAnswer,
    OpenAIWriter,
    TemplateWriter,
    WriterRefused,
    WriterUnavailable,
    write_fitting,
    writer_from_settings,
)
from herald_common.platforms import PlatformRegistry
from herald_common.platforms.bluesky import MAX_GRAPHEMES
from herald_common.platforms.http import grapheme_length
from herald_common.platforms.x import weighted_length
from tests.conftest import make_settings
from tests.platforms.servers import Reply

from .fake_openai import FakeChat, completion, error, post_answer, serving


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """Only the registry needs a database here (the sandbox adapter keeps what it is sent)."""
    return sqlite_engine


KEY = "sk-test-0123456789abcdefSECRET"
TOPICS = ("home brewing", "latte art", "ethical sourcing", "SEO for small shops")
TONES = ("warm and playful", "professional", "bold and direct", None)


@pytest.fixture
def rules(registry: PlatformRegistry) -> TextRules:
    return TextRules.of(registry, ["x", "bluesky"])


def brief(rules: TextRules, index: int = 0, **fields: object) -> Brief:
    values: dict[str, object] = {
        "brand": "Bean There Coffee",
        "topic": TOPICS[index % len(TOPICS)],
        "tone": TONES[index % len(TONES)],
        "hashtags": ("#coffee", "#BeanThere", "#brewing", "#barista"),
        "platforms": rules.platforms,
        "budget": 280,  # rules.budget() for X and Bluesky (test_composing checks it)
        "seed": "job-1",
        "index": index,
        "when": datetime(2031, 5, 1 + index % 28, 9, tzinfo=ZoneInfo("Europe/Paris")),
    }
    values.update(fields)
    return Brief(**values)  # type: ignore[arg-type]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=2.0) as client:
        yield client


# --- the template writer ---------------------------------------------------------------------


def test_template_posts_fit_x_and_bluesky(rules: TextRules) -> None:
    # When the template writer writes sixty posts for X and Bluesky
    posts = [write_fitting(TemplateWriter(), brief(rules, i), rules) for i in range(60)]

    # Then every one fits both, as each platform counts, and has all three parts
    for parts in posts:
        text = parts.text()
        assert weighted_length(text) <= 280, text
        assert grapheme_length(text) <= MAX_GRAPHEMES, text
        assert parts.hook and parts.body and parts.hashtags
        assert all(tag.startswith("#") for tag in parts.hashtags)
        assert "lorem" not in text.lower() and "{" not in text


def test_template_posts_are_about_their_topic_and_vary(rules: TextRules) -> None:
    posts = [TemplateWriter().write(brief(rules, i)) for i in range(30)]

    # Each post speaks of its topic, neighbours never share a hook, and a month has variety
    for index, parts in enumerate(posts):
        assert TOPICS[index % len(TOPICS)].lower() in parts.text().lower()
    assert all(a.hook != b.hook for a, b in itertools.pairwise(posts))
    assert len({p.hook for p in posts}) >= 15
    assert len({p.body for p in posts}) >= 15


def test_template_posts_are_the_same_for_the_same_seed(rules: TextRules) -> None:
    writer = TemplateWriter()
    assert writer.write(brief(rules, 3)) == writer.write(brief(rules, 3))
    assert writer.write(brief(rules, 3)) != writer.write(brief(rules, 3, seed="job-2"))


def test_a_regenerated_part_differs_and_the_rest_is_kept(rules: TextRules) -> None:
    # Given a post
    current = write_fitting(TemplateWriter(), brief(rules, 0), rules)

    # When its hook is written again
    again = write_fitting(
        TemplateWriter(), brief(rules, 0, part="hook", current=current, seed="job-9"), rules
    )

    # Then the hook is new and the body and hashtags are the post's
    assert again.hook != current.hook
    assert (again.body, again.hashtags) == (current.body, current.hashtags)


def test_the_settings_choose_the_writer() -> None:
    assert isinstance(writer_from_settings(make_settings()), TemplateWriter)
    configured = make_settings(content_api_url="http://127.0.0.1:9/v1", content_api_key=KEY)
    assert isinstance(writer_from_settings(configured), OpenAIWriter)


# --- the OpenAI-compatible writer --------------------------------------------------------------


def openai(http: httpx.Client, chat: FakeChat) -> OpenAIWriter:
    return OpenAIWriter(http, url=chat.url, model="gpt-test", api_key=KEY)


def test_a_malformed_answer_is_asked_again(http: httpx.Client, rules: TextRules) -> None:
    good = post_answer("Fresh beans, better mornings.", "Grind just before you brew.", ["coffee"])
    with serving(FakeChat(completion("Sure! Here is your post: hook…"), good)) as chat:
        # When the first answer is not JSON and the second is good
        parts = write_fitting(openai(http, chat), brief(rules), rules, attempts=3)

    # Then the post is the second answer's
    assert parts == Parts(
        "Fresh beans, better mornings.", "Grind just before you brew.", ("#coffee",)
    )
    # and the second request said why the first was refused
    assert len(chat.prompts()) == 2
    assert "not JSON" in chat.prompts()[1]
    # and each request asked for a JSON object, from the model, with the key
    request = chat.payloads()[0]
    assert request["model"] == "gpt-test"
    assert request["response_format"] == {"type": "json_object"}
    assert request["messages"][0]["role"] == "system"
    assert chat.calls("/v1/chat/completions")[0].headers["authorization"] == f"Bearer {KEY}"
    assert "280 characters" in chat.prompts()[0]


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (completion("not json at all"), "not JSON"),
        (completion(json.dumps({"hook": "Only a hook"})), "has no body, hashtags"),
        (completion(json.dumps(["a", "list"])), "not a JSON object"),
        (completion(json.dumps({"hook": "", "body": "b", "hashtags": []})), "hook is empty"),
    ],
)
def test_always_malformed_gives_up_with_the_reason(
    http: httpx.Client, rules: TextRules, reply: Reply, why: str
) -> None:
    with serving(FakeChat(reply)) as chat, pytest.raises(NoUsableAnswer) as caught:
        write_fitting(openai(http, chat), brief(rules), rules, attempts=3)

    assert len(chat.prompts()) == 3
    assert "3 tries" in caught.value.reason and why in caught.value.reason


def test_an_answer_too_long_is_asked_again_then_cut(http: httpx.Client, rules: TextRules) -> None:
    long_body = "Grind your beans just before you brew them, every single time. " * 8
    with serving(FakeChat(post_answer("Better mornings.", long_body, ["coffee", "brew"]))) as chat:
        parts = write_fitting(openai(http, chat), brief(rules), rules, attempts=2)

    # Asked twice (the second time told it was too long), then cut to fit after a whole word
    assert len(chat.prompts()) == 2
    assert "too long" in chat.prompts()[1]
    assert rules.fits(parts.text())
    assert parts.hook == "Better mornings."
    assert long_body.startswith(parts.body.rstrip("…").rstrip(".").rstrip())


@pytest.mark.parametrize("status", [401, 403, 400])
def test_a_refusal_is_permanent_names_the_status_and_never_the_key(
    http: httpx.Client, rules: TextRules, status: int
) -> None:
    message = f"Incorrect API key provided: {KEY}. You can find your API key at …"
    with serving(FakeChat(error(status, message))) as chat, pytest.raises(WriterRefused) as caught:
        write_fitting(openai(http, chat), brief(rules), rules, attempts=3)

    # Asked once: asking again cannot help
    assert len(chat.prompts()) == 1
    assert caught.value.status == status
    assert f"HTTP {status}" in caught.value.reason
    assert "Incorrect API key provided" in caught.value.reason
    assert KEY not in caught.value.reason and "SECRET" not in caught.value.reason


@pytest.mark.parametrize("status", [500, 503, 429])
def test_an_unavailable_service_is_worth_trying_later(
    http: httpx.Client, rules: TextRules, status: int
) -> None:
    overloaded = FakeChat(error(status, "The server is overloaded"))
    with serving(overloaded) as chat, pytest.raises(WriterUnavailable) as caught:
        write_fitting(openai(http, chat), brief(rules), rules, attempts=3)

    assert len(chat.prompts()) == 1
    assert f"HTTP {status}" in caught.value.reason


def test_a_timeout_is_worth_trying_later(rules: TextRules) -> None:
    slow = FakeChat(post_answer("h", "b", []), delay=1.0)
    with (
        httpx.Client(timeout=0.2) as slow_client,
        serving(slow) as chat,
        pytest.raises(WriterUnavailable) as caught,
    ):
        openai(slow_client, chat).write(brief(rules))

    assert "did not answer in time" in caught.value.reason


def test_an_answer_in_a_code_fence_is_read(http: httpx.Client, rules: TextRules) -> None:
    fenced = '```json\n{"hook": "H.", "body": "B.", "hashtags": ["#x", "two words"]}\n```'
    with serving(FakeChat(completion(fenced))) as chat:
        parts = openai(http, chat).write(brief(rules))

    assert parts == Parts("H.", "B.", ("#x", "#TwoWords"))
