"""A generated post's parts (hook, body, hashtags), their composition into one text, and
making that text fit every platform it is meant for.

The platforms' own adapters are the judges of length (`Platform.validate`): X counts links as
23 and emoji as 2, Bluesky counts graphemes, TikTok UTF-16 units, and an account can be
stricter than its platform (a Mastodon server's limit, a sandbox account's `max_length`).
Nothing here repeats their arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from herald_common.models import Account
from herald_common.platforms import AccountRef, PlatformRegistry, account_ref

Part = Literal["hook", "body", "hashtags"]
#: Every part, in the order they are composed.
PARTS: tuple[Part, ...] = ("hook", "body", "hashtags")
#: The most hashtags a generated post carries (Instagram takes 30; more reads as spam anyway).
MAX_HASHTAGS = 10
MAX_HASHTAG_LENGTH = 100
#: The longest text Herald keeps in a post (herald_api.schemas.MAX_CONTENT_LENGTH).
MAX_TEXT = 10_000

_HASH_SIGNS = "#＃"
_TAG = re.compile(r"^\w+$")
_BLOCKS = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_ELLIPSIS = "…"
# Rules whose breach is about media, not text (the same words herald_api's post checks use).
_MEDIA_WORDS = ("media", "image", "video", "photo", "alt", "carousel", "attachment")


def normalize_hashtag(raw: str) -> str | None:
    """`#tag` from `tag`, `#tag` or `＃tag`; None when it is not one word of letters, digits or
    underscores (what every platform links as a hashtag)."""
    tag = raw.strip().lstrip(_HASH_SIGNS)
    if not tag or len(tag) > MAX_HASHTAG_LENGTH or not _TAG.match(tag):
        return None
    return f"#{tag}"


def coerce_hashtag(raw: str) -> str | None:
    """A writer's hashtag made usable: `social media` → `#SocialMedia`; None when nothing of it
    is a word. API input is checked with `normalize_hashtag` instead, which refuses."""
    words = re.findall(r"\w+", raw.strip().lstrip(_HASH_SIGNS))
    if not words:
        return None
    tag = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
    return normalize_hashtag(tag)


def unique_hashtags(tags: Iterable[str]) -> tuple[str, ...]:
    """The tags in order, each once (compared without case, as platforms link them)."""
    seen: set[str] = set()
    kept = []
    for tag in tags:
        if tag.lower() not in seen:
            seen.add(tag.lower())
            kept.append(tag)
    return tuple(kept)


@dataclass(frozen=True)
class Parts:
    """What a writer makes: an opening line, the body, and hashtags (each `#word`); and the
    topic it wrote about, kept so that a part written again stays on the same subject."""

    hook: str = ""
    body: str = ""
    hashtags: tuple[str, ...] = ()
    topic: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Parts:
        """Parts as stored in `posts.parts`."""
        return cls(
            hook=str(data.get("hook") or ""),
            body=str(data.get("body") or ""),
            hashtags=tuple(str(t) for t in data.get("hashtags") or ()),
            topic=str(data.get("topic") or ""),
        )

    def as_dict(self) -> dict[str, Any]:
        """Parts as `posts.parts` keeps them."""
        stored: dict[str, Any] = {
            "hook": self.hook,
            "body": self.body,
            "hashtags": list(self.hashtags),
        }
        if self.topic:
            stored["topic"] = self.topic
        return stored

    def text(self) -> str:
        """The post's text: the parts that are not empty, a blank line between them."""
        return compose(self.hook, self.body, self.hashtags)

    def with_part(self, part: Part, new: Parts) -> Parts:
        """These parts with `part` taken from `new`."""
        return replace(self, **{part: getattr(new, part)})


def compose(hook: str, body: str, hashtags: Sequence[str]) -> str:
    """hook, body and hashtags as one post, a blank line between the parts that are not empty."""
    blocks = [hook.strip(), body.strip(), " ".join(hashtags)]
    return "\n\n".join(block for block in blocks if block)


def parts_of(content: str, stored: Mapping[str, Any] | None) -> Parts:
    """A post's parts: the stored ones while they still compose its text, otherwise read back
    from the text (a person may have edited it since): a last block of hashtags is the
    hashtags, a first block the hook when another follows, the rest the body."""
    topic = str((stored or {}).get("topic") or "")
    if stored:
        parts = Parts.from_mapping(stored)
        if parts.text() == content:
            return parts
    blocks = [block.strip() for block in _BLOCKS.split(content) if block.strip()]
    hashtags: tuple[str, ...] = ()
    if blocks:
        words = blocks[-1].split()
        tags = [normalize_hashtag(word) for word in words]
        if all(
            tag is not None and word[:1] in _HASH_SIGNS
            for tag, word in zip(tags, words, strict=True)
        ):
            hashtags = tuple(t for t in tags if t is not None)
            blocks.pop()
    if len(blocks) >= 2:
        return Parts(blocks[0], "\n\n".join(blocks[1:]), hashtags, topic)
    return Parts("", blocks[0] if blocks else "", hashtags, topic)


# --- what the platforms accept -----------------------------------------------------------


def is_text_rule(rule: str) -> bool:
    """Whether a platform rule is about the text's length or counts (what a writer controls),
    not about media, settings or the account."""
    return rule.startswith("max_") and not any(word in rule for word in _MEDIA_WORDS)


@dataclass(frozen=True)
class TextRules:
    """The text rules of the platforms a post is meant for, and of the accounts it will go to.

    A platform named without an account is checked with its defaults; an account with its own
    settings (a Mastodon server's limit, a sandbox's `max_length`) is checked as it is.
    """

    registry: PlatformRegistry
    refs: tuple[AccountRef, ...] = ()

    @classmethod
    def of(
        cls,
        registry: PlatformRegistry,
        platforms: Iterable[str],
        accounts: Iterable[Account] = (),
        *,
        tenant_id: str = "",
    ) -> TextRules:
        """The rules of `platforms` (their defaults) and of `accounts` (their settings)."""
        refs = [
            AccountRef(id="", tenant_id=tenant_id, platform=name, handle="")
            for name in dict.fromkeys(platforms)
        ]
        refs += [account_ref(account) for account in accounts]
        return cls(registry, tuple(refs))

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms checked, each once."""
        return tuple(dict.fromkeys(ref.platform for ref in self.refs))

    def problems(self, text: str) -> list[str]:
        """Why `text` does not fit (`x: counts 301 …`); empty when every platform takes it."""
        found = []
        if len(text) > MAX_TEXT:
            found.append(f"is {len(text)} characters; Herald keeps at most {MAX_TEXT}")
        for ref in self.refs:
            for violation in self.registry.get(ref.platform).validate(text, [], ref):
                if is_text_rule(violation.rule):
                    where = f"{ref.platform} account {ref.handle}" if ref.id else ref.platform
                    found.append(f"{where} ({violation.rule}): {violation.reason}")
        return found

    def fits(self, text: str) -> bool:
        """Whether every platform takes `text`."""
        return not self.problems(text)

    def budget(self) -> int:
        """The most plain characters every platform takes: a guide for writers (links, emoji
        and other scripts count differently per platform, so `problems` stays the judge)."""
        low, high = 1, MAX_TEXT
        if not self.fits("x" * low):
            return 0
        while low < high:
            middle = (low + high + 1) // 2
            if self.fits("x" * middle):
                low = middle
            else:
                high = middle - 1
        return low


# --- making a text fit ---------------------------------------------------------------------


def _trim_words(text: str, fits: Callable[[str], bool]) -> str | None:
    """The longest start of `text` cut after a whole word (with an ellipsis) that `fits`."""
    words = text.split()
    low, high, best = 1, len(words) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = " ".join(words[:middle]).rstrip(",;:—-") + _ELLIPSIS
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _shorter_texts(text: str) -> Iterable[str]:
    """Ever shorter versions of a text: whole sentences dropped from the end first."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    for count in range(len(sentences) - 1, 0, -1):
        yield " ".join(sentences[:count])


def shorten(parts: Parts, rules: TextRules, mutable: Collection[Part] = PARTS) -> Parts | None:
    """The parts cut until every platform takes them, or None when they cannot be.

    Only the `mutable` parts change, in this order: hashtags dropped from the end, the body's
    last sentences dropped, then the body and at last the hook cut after a whole word — never
    inside one.
    """
    if rules.fits(parts.text()):
        return parts
    if "hashtags" in mutable:
        while parts.hashtags:
            parts = replace(parts, hashtags=parts.hashtags[:-1])
            if rules.fits(parts.text()):
                return parts
    for part in ("body", "hook"):
        text = parts.body if part == "body" else parts.hook
        if part not in mutable or not text:
            continue
        for shorter in _shorter_texts(text):
            candidate = _with_text(parts, part, shorter)
            if rules.fits(candidate.text()):
                return candidate

        def fits(text: str, part: str = part, current: Parts = parts) -> bool:
            return rules.fits(_with_text(current, part, text).text())

        trimmed = _trim_words(text, fits)
        if trimmed is not None:
            return _with_text(parts, part, trimmed)
        if part == "body" and parts.hook:
            # Not one word of the body fits beside the hook: the hook alone may.
            parts = replace(parts, body="")
            if rules.fits(parts.text()):
                return parts
    return None


def _with_text(parts: Parts, part: str, text: str) -> Parts:
    return replace(parts, hook=text) if part == "hook" else replace(parts, body=text)
