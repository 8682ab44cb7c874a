"""The routing table's vocabulary: a Route serves Operations. Each domain declares its routes
with these (`herald_api.routes` gathers them), and the OpenAPI document is built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dramatiq.broker import Broker
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    """One method on one route, as the OpenAPI document describes it."""

    method: str
    summary: str
    response: type[BaseModel] | None = None  # None: no body (204), or `media_type` below
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # besides those implied (401, 404 on ids, 400/415/422 on bodies)
    public: bool = False
    media_type: str = "application/json"
    description: str = ""


@dataclass(frozen=True)
class Route:
    """A path, the resource serving it (with Falcon's responder suffix) and its operations."""

    path: str
    resource: object
    operations: tuple[Operation, ...]
    suffix: str | None = None
    tag: str = "posts"

    def responder_name(self, method: str) -> str:
        """The resource method Falcon calls for `method` on this route."""
        return f"on_{method.lower()}" + (f"_{self.suffix}" if self.suffix else "")


class DomainRoutes(Protocol):
    """A domain module's `routes` function: its routes, built from the injected collaborators."""

    def __call__(
        self, *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
    ) -> list[Route]: ...
