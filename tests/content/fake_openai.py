"""A local OpenAI-compatible chat-completions server: answers what the test scripts, in turn."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.platforms.servers import FakeServer, Recorded, Reply, running

CHAT_PATH = "/v1/chat/completions"


def completion(content: str) -> Reply:
    """A chat completion whose one message is `content`."""
    return Reply(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        },
    )


def post_answer(hook: str, body: str, hashtags: list[str]) -> Reply:
    """A well-formed answer."""
    return completion(json.dumps({"hook": hook, "body": body, "hashtags": hashtags}))


def error(status: int, message: str) -> Reply:
    """An error as OpenAI words it."""
    return Reply(status, {"error": {"message": message, "type": "invalid_request_error"}})


class FakeChat(FakeServer):
    """Answers each POST /v1/chat/completions with the next scripted reply (the last one again
    once the script runs out); `delay` seconds before answering."""

    def __init__(self, *replies: Reply, delay: float = 0.0) -> None:
        super().__init__()
        self.script = list(replies)
        self.delay = delay

    @property
    def url(self) -> str:
        return super().url + "/v1"

    def respond(self, request: Recorded) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        if request.path != CHAT_PATH or request.method != "POST":
            return Reply(404, {"error": {"message": f"no route {request.path}"}})
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def prompts(self) -> list[str]:
        """The user message of each call."""
        return [call.json()["messages"][-1]["content"] for call in self.calls(CHAT_PATH)]

    def payloads(self) -> list[dict[str, Any]]:
        return [call.json() for call in self.calls(CHAT_PATH)]


@contextmanager
def serving(chat: FakeChat) -> Iterator[FakeChat]:
    """The fake, started for the duration of the block."""
    with running(chat):
        yield chat
