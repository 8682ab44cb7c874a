"""Writers: what turns a brief (a brand, a topic, a length) into a post's parts.

Two ship: the `TemplateWriter` (offline, the default: varied, deterministic for a seed) and the
`OpenAIWriter` (any OpenAI-compatible chat-completions endpoint, when CONTENT_API_URL is set).
`write_fitting` asks a writer until its answer fits every platform, then cuts it to fit.

WriterError
├── MalformedAnswer     the answer was not the JSON asked for (asking again may help)
├── NoUsableAnswer      every try was malformed, or too long to be cut to fit
├── WriterUnavailable   the service is down, slow or busy: try again later
└── WriterRefused       the service refused the request itself (a bad key, an unknown model)
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

from herald_common.content.composing import (
    MAX_HASHTAGS,
    PARTS,
    Part,
    Parts,
    TextRules,
    coerce_hashtag,
    compose,
    shorten,
    unique_hashtags,
)
from herald_common.logs import redact
from herald_common.settings import Settings

#: What a brief asks for: the whole post, or one part of it again.
Scope = Literal["hook", "body", "hashtags", "full"]


class WriterError(Exception):
    """Raised when a writer could not write; `reason` is shown to users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedAnswer(WriterError):
    """Raised when the answer is not the JSON object asked for, or misses a field."""


class NoUsableAnswer(WriterError):
    """Raised when every try was malformed, or the last one too long to be cut to fit."""


class WriterUnavailable(WriterError):
    """Raised when the writer's service is down, times out, or asks us to slow down."""


class WriterRefused(WriterError):
    """Raised when the writer's service refuses the request itself (401, 403, 400, 404…)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Brief:
    """What to write: one post of a brand, about one topic, in a length every platform takes.

    `seed` and `index` make the template writer's choices repeatable (a job's id and the
    post's number); `attempt` and `feedback` say that an earlier answer was refused, and why.
    For a regeneration, `part` names what to write again and `current` holds the post as it is.
    """

    brand: str
    topic: str
    description: str | None = None
    tone: str | None = None
    style: str | None = None
    hashtags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    budget: int = 280
    seed: str = ""
    index: int = 0
    when: datetime | None = None  # local time it is meant to go out
    part: Scope = "full"
    current: Parts | None = None
    attempt: int = 1
    feedback: str | None = None


class Writer(Protocol):
    """Writes a post's parts for a brief (at least the part the brief asks for)."""

    def write(self, brief: Brief) -> Parts:
        """The parts; raises a WriterError when it cannot."""
        ...


def write_fitting(writer: Writer, brief: Brief, rules: TextRules, *, attempts: int = 3) -> Parts:
    """The writer's parts for `brief`, made to fit `rules`.

    A malformed answer, or one too long for a platform, is asked for again (saying why) up to
    `attempts` times; the last well-formed answer that is still too long is cut to fit
    (hashtags dropped, the body then the hook cut after a whole word). For a regeneration only
    the part asked for is taken from the writer, and only that part is cut.

    Raises NoUsableAnswer when nothing fits, WriterUnavailable and WriterRefused as the writer
    does.
    """
    base = brief.current or Parts()
    mutable: Collection[Part] = PARTS if brief.part == "full" else (brief.part,)
    feedback: str | None = None
    last: Parts | None = None
    for attempt in range(1, attempts + 1):
        try:
            answer = writer.write(replace(brief, attempt=attempt, feedback=feedback))
        except MalformedAnswer as exc:
            feedback = exc.reason
            continue
        parts = answer if brief.part == "full" else base.with_part(brief.part, answer)
        problems = rules.problems(parts.text())
        if not problems:
            return parts
        last = parts
        feedback = f"the post is too long: {problems[0]}"
    if last is None:
        raise NoUsableAnswer(
            f"the writer gave no usable answer in {attempts} tries; the last: {feedback}"
        )
    fitted = shorten(last, rules, mutable)
    if fitted is None:
        raise NoUsableAnswer(
            f"the writer's {brief.part if brief.part != 'full' else 'post'} cannot be made to "
            f"fit: {feedback}"
        )
    return fitted


def writer_from_settings(settings: Settings, client: httpx.Client | None = None) -> Writer:
    """The OpenAI-compatible writer when CONTENT_API_URL is set, else the template writer."""
    if not settings.content_api_url:
        return TemplateWriter()
    return OpenAIWriter(
        client or httpx.Client(timeout=settings.content_api_timeout_seconds),
        url=settings.content_api_url,
        model=settings.content_model,
        api_key=settings.content_api_key,
    )


# --- the template writer ---------------------------------------------------------------------

Voice = Literal["friendly", "professional", "playful", "bold"]

_VOICE_WORDS: dict[Voice, tuple[str, ...]] = {
    "playful": ("playful", "fun", "witty", "casual", "cheeky", "humor", "humour", "quirky"),
    "professional": ("professional", "formal", "expert", "authoritative", "corporate", "serious"),
    "bold": ("bold", "inspiring", "energetic", "motivational", "confident", "direct", "punchy"),
    "friendly": ("friendly", "warm", "approachable", "helpful", "kind"),
}

# Hooks by the kind of post they open; {topic}, {Topic}, {brand}, {month}, {weekday}.
_HOOKS: dict[str, tuple[str, ...]] = {
    "question": (
        "Quick question: how much of your week goes into {topic}?",
        "New to {topic}? Start here.",
        "What would change if {topic} took half the time?",
        "Is {topic} on your list this {month}? Here's a simple way in.",
    ),
    "tip": (
        "If {topic} feels stuck, try this.",
        "A small {topic} win you can have before lunch.",
        "Before you spend another hour on {topic}, read this.",
        "The one {topic} habit we'd keep if we could only keep one.",
    ),
    "list": (
        "Three things we've learned about {topic} this {month}.",
        "Two questions to ask before your next step in {topic}.",
        "What good {topic} looks like, in under a minute.",
    ),
    "myth": (
        "Myth: {topic} needs a big budget. It doesn't.",
        "Most people overthink {topic}. Here's a simpler way.",
        "Here's what nobody tells you about {topic}.",
    ),
    "story": (
        "Behind the scenes at {brand}: how we think about {topic}.",
        "We get asked about {topic} a lot. Here's our honest answer.",
        "What a year of {topic} taught us at {brand}.",
    ),
}
_DAY_HOOKS = (
    "{weekday} reset: one small upgrade to your {topic}.",
    "Your {weekday} reminder: {topic} rewards the small, steady steps.",
)
_VOICE_HOOKS: dict[Voice, tuple[str, ...]] = {
    "professional": (
        "{Topic}: what the best teams do differently.",
        "A practical checklist for {topic}.",
    ),
    "bold": (
        "Stop waiting for the perfect moment for {topic}.",
        "{Topic} doesn't need another plan. It needs a first step.",
    ),
    "playful": (
        "Confession: we think about {topic} more than is probably normal.",
        "{Topic}, but make it easy.",
    ),
    "friendly": ("Let's make {topic} a little easier this week.",),
}
_STYLE_KINDS = {
    "question": "question",
    "ask": "question",
    "tip": "tip",
    "how": "tip",
    "educat": "tip",
    "guide": "tip",
    "list": "list",
    "myth": "myth",
    "story": "story",
    "behind": "story",
    "personal": "story",
}
_OPENERS = (
    "Pick one part of {topic} you repeat every week and write the steps down.",
    "Start with the result you want, then work backwards: every step of {topic} should earn "
    "its place.",
    "The people who do {topic} well aren't doing more. They do the same few things, every week.",
    "With {topic}, consistency beats intensity: thirty focused minutes a week outperform one "
    "heroic weekend.",
    "Good {topic} starts with one honest question: what would make this easier for the people "
    "we serve?",
    "Write down what worked in {topic} last month, and what didn't. The pattern is usually "
    "obvious.",
    "Small experiments teach you more about {topic} than big plans do.",
    "At {brand}, we review our {topic} every Friday: what moved, what stalled, what to drop.",
    "You don't need new tools for better {topic}. You need a clearer first step.",
    "Treat {topic} like a habit, not a project: a little, often, and on purpose.",
)
_DETAILS = (
    "Next week, cut one step. Small edits add up faster than big overhauls.",
    "Measure one thing, change one thing, and check again in a week.",
    "Keep what works, drop what doesn't, and write both down.",
    "The hard part isn't knowing what to do. It's doing it when nobody's watching.",
    "It's less exciting than a big launch, and it works far more often.",
    "Share the result with someone you trust; a second pair of eyes catches what you miss.",
)
_CALLS: dict[Voice, tuple[str, ...]] = {
    "friendly": (
        "What would you add?",
        "Tell us how it goes!",
        "Save this for your next planning session.",
        "Know someone who'd find this useful? Send it their way.",
    ),
    "professional": (
        "How does your team approach it?",
        "Worth a look before your next planning cycle.",
        "We'd like to hear what has worked for you.",
    ),
    "playful": (
        "Your turn: what's your secret? 👀",
        "Try it and report back 🙌",
        "Tag a friend who needs this 😄",
    ),
    "bold": (
        "Start today. Not Monday.",
        "Your move.",
        "Take the first step now, then tell us how it went.",
    ),
}
#: Hashtags a template post carries at most (a few read better than many).
_TEMPLATE_HASHTAGS = 3


def voice_of(tone: str | None) -> Voice:
    """The template voice closest to a brand's tone, in its own words."""
    words = (tone or "").lower()
    for voice, markers in _VOICE_WORDS.items():
        if any(marker in words for marker in markers):
            return voice
    return "friendly"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


class TemplateWriter:
    """Writes from templates: offline and free, varied across a month, the same for a seed.

    Each post of a job takes the next hook and body in an order shuffled once per job, so
    neighbouring posts differ; a regeneration takes the first variant that differs from the
    post's current part.
    """

    #: Variants tried for a regeneration before settling for one that does not differ.
    VARIANTS = 24

    def write(self, brief: Brief) -> Parts:
        """The parts for `brief`."""
        changed = "hook" if brief.part == "full" else brief.part
        avoid = getattr(brief.current, changed) if brief.current is not None else None
        parts = self._variant(brief, 0)
        for variant in range(1, self.VARIANTS):
            if avoid is None or getattr(parts, changed) != avoid:
                break
            parts = self._variant(brief, variant)
        return parts

    def _variant(self, brief: Brief, variant: int) -> Parts:
        voice = voice_of(brief.tone)
        order = random.Random(f"{brief.seed}:order")
        pick = random.Random(f"{brief.seed}:{brief.index}:{brief.attempt}:{variant}")
        step = brief.index + brief.attempt - 1 + variant
        words = self._words(brief)

        hooks = self._hooks(brief, voice)
        order.shuffle(hooks)
        hook = hooks[step % len(hooks)].format(**words)

        openers, details = list(_OPENERS), list(_DETAILS)
        order.shuffle(openers)
        order.shuffle(details)
        calls = _CALLS[voice]
        sentences = [
            openers[step % len(openers)].format(**words),
            details[(step * 5 + 1) % len(details)].format(**words),
            calls[pick.randrange(len(calls))],
        ]
        hashtags = self._hashtags(brief, pick)
        body = sentences[0]
        for sentence in sentences[1:]:
            longer = f"{body} {sentence}"
            if len(compose(hook, longer, hashtags)) <= brief.budget:
                body = longer
        return Parts(hook, body, hashtags)

    @staticmethod
    def _words(brief: Brief) -> dict[str, str]:
        when = brief.when
        return {
            "topic": brief.topic,
            "Topic": _capitalized(brief.topic),
            "brand": brief.brand,
            "month": when.strftime("%B") if when else "month",
            "weekday": when.strftime("%A") if when else "Weekly",
        }

    @staticmethod
    def _hooks(brief: Brief, voice: Voice) -> list[str]:
        style = (brief.style or "").lower()
        kinds = {kind for marker, kind in _STYLE_KINDS.items() if marker in style}
        hooks = [
            hook
            for kind, options in _HOOKS.items()
            if not kinds or kind in kinds
            for hook in options
        ]
        hooks += _VOICE_HOOKS[voice]
        if brief.when is not None and not kinds:
            hooks += _DAY_HOOKS
        return hooks

    @staticmethod
    def _hashtags(brief: Brief, pick: random.Random) -> tuple[str, ...]:
        pool = list(unique_hashtags(brief.hashtags))
        chosen = sorted(pick.sample(range(len(pool)), min(_TEMPLATE_HASHTAGS, len(pool))))
        tags = [pool[i] for i in chosen]
        if len(tags) < 2:
            topic_tag = coerce_hashtag(brief.topic)
            if topic_tag is not None:
                tags.append(topic_tag)
        return unique_hashtags(tags)


# --- the OpenAI-compatible writer -----------------------------------------------------------

_SYSTEM = (
    "You write social media posts for brands. Answer with one JSON object and nothing else: "
    '{"hook": string, "body": string, "hashtags": [string]}. The hook is the opening line '
    "that makes a reader stop scrolling; the body says one useful thing in the brand's voice "
    "and may end with a question or a call to action; hashtags are single words (letters, "
    "digits, underscores), at most five. Never invent facts, prices, dates or statistics "
    "about the brand."
)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SECRET = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_*-]{6,}")
#: How much of a provider's error message is kept.
_MAX_MESSAGE = 300


class OpenAIWriter:
    """Writes with an OpenAI-compatible chat-completions endpoint (OpenAI, Azure's, Ollama,
    vLLM…), asking for a JSON object (`response_format: json_object`)."""

    def __init__(
        self, client: httpx.Client, *, url: str, model: str, api_key: str | None = None
    ) -> None:
        self._client = client
        self._endpoint = url.rstrip("/") + "/chat/completions"
        self._model = model
        self._api_key = api_key

    def write(self, brief: Brief) -> Parts:
        """The parts for `brief`; MalformedAnswer, WriterUnavailable or WriterRefused."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        request = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": prompt(brief)},
            ],
            "response_format": {"type": "json_object"},
        }
        try:
            response = self._client.post(self._endpoint, json=request, headers=headers)
        except httpx.TimeoutException:
            raise WriterUnavailable("the content API did not answer in time") from None
        except httpx.HTTPError as exc:
            raise WriterUnavailable(
                f"the content API could not be reached ({type(exc).__name__})"
            ) from None
        status = response.status_code
        if status in (408, 429) or status >= 500:
            raise WriterUnavailable(
                f"the content API answered HTTP {status}: {self._message(response)}"
            )
        if status >= 400:
            raise WriterRefused(
                f"the content API refused the request (HTTP {status}): {self._message(response)}",
                status,
            )
        return parse_answer(response, brief.part)

    def _message(self, response: httpx.Response) -> str:
        """The provider's error message, cut short, with anything like a key masked."""
        try:
            body = response.json()
        except ValueError:
            body = None
        message: Any = body
        if isinstance(body, Mapping):
            error = body.get("error", body)
            message = error.get("message", error) if isinstance(error, Mapping) else error
        text = message if isinstance(message, str) else response.text or response.reason_phrase
        text = " ".join(str(text).split())[:_MAX_MESSAGE]
        if self._api_key:
            text = text.replace(self._api_key, "[redacted]")
        return _SECRET.sub("[redacted]", redact(text)) or "no message"


def prompt(brief: Brief) -> str:
    """The user message for a brief."""
    lines = [f"Brand: {brief.brand}"]
    if brief.description:
        lines.append(f"About the brand: {brief.description}")
    lines.append(f"Tone: {brief.tone or 'friendly and clear'}")
    if brief.style:
        lines.append(f"Style: {brief.style}")
    lines.append(f"Topic of this post: {brief.topic}")
    if brief.hashtags:
        lines.append(f"Hashtags the brand uses (prefer these): {' '.join(brief.hashtags)}")
    if brief.platforms:
        lines.append(f"It will be posted on: {', '.join(brief.platforms)}")
    if brief.when is not None:
        lines.append(f"It goes out on {brief.when.strftime('%A %d %B %Y')}.")
    lines.append(
        f"The whole post — hook, a blank line, body, a blank line, the hashtags separated by "
        f"spaces — must be at most {brief.budget} characters."
    )
    if brief.part != "full" and brief.current is not None:
        current = brief.current
        lines += [
            f"Rewrite only the {brief.part} of this post, differently; the rest stays as it is.",
            f"Current hook: {current.hook}",
            f"Current body: {current.body}",
            f"Current hashtags: {' '.join(current.hashtags)}",
            f'Answer with the JSON object; only its "{brief.part}" is used.',
        ]
    elif brief.current is not None:
        lines.append(f"Write a new post; do not reuse this hook: {brief.current.hook}")
    if brief.feedback:
        lines.append(f"Your previous answer could not be used ({brief.feedback}). Answer again.")
    return "\n".join(lines)


def parse_answer(response: httpx.Response, part: Scope = "full") -> Parts:
    """The parts in a chat-completions answer; MalformedAnswer saying what is wrong."""
    try:
        body = response.json()
        content = body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise MalformedAnswer("the answer is not a chat completion with a message") from None
    if not isinstance(content, str):
        raise MalformedAnswer("the message has no text")
    content = content.strip()
    fenced = _FENCE.match(content)
    if fenced:
        content = fenced.group(1)
    try:
        data = json.loads(content)
    except ValueError:
        raise MalformedAnswer("the message is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedAnswer("the message is not a JSON object")
    needed = PARTS if part == "full" else (part,)
    missing = [name for name in needed if name not in data]
    if missing:
        raise MalformedAnswer(f"the JSON object has no {', '.join(missing)}")
    hook, body_text, tags = data.get("hook", ""), data.get("body", ""), data.get("hashtags", [])
    if not isinstance(hook, str) or not isinstance(body_text, str):
        raise MalformedAnswer("hook and body must be strings")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise MalformedAnswer("hashtags must be a list of strings")
    for name in needed:
        if name != "hashtags" and not str(data[name]).strip():
            raise MalformedAnswer(f"the {name} is empty")
    hashtags = unique_hashtags(t for t in map(coerce_hashtag, tags) if t is not None)
    return Parts(hook.strip(), body_text.strip(), hashtags[:MAX_HASHTAGS])
