"""Platform adapters behind one interface, and the registry that builds them."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from herald_common.errors import FieldError, InvalidInput
from herald_common.platforms.base import (
    AccountRef,
    LookupUnsupported,
    Platform,
    PublishRequest,
    PublishResult,
    Violation,
)
from herald_common.platforms.sandbox import SandboxPlatform, SandboxSettings

#: Platforms an account can be created for, with the schema of their non-secret settings.
ACCOUNT_SETTINGS_SCHEMAS = {"sandbox": SandboxSettings}
PLATFORMS = tuple(ACCOUNT_SETTINGS_SCHEMAS)


class PlatformRegistry:
    """Builds each adapter once, with the collaborators it needs."""

    def __init__(self, engine: Engine) -> None:
        self._adapters: dict[str, Platform] = {"sandbox": SandboxPlatform(engine)}

    def get(self, platform: str) -> Platform:
        """The adapter for a platform name; InvalidInput when Herald has none."""
        try:
            return self._adapters[platform]
        except KeyError:
            raise InvalidInput(
                FieldError("platform", f"Herald has no adapter for {platform!r}")
            ) from None


__all__ = [
    "PLATFORMS",
    "AccountRef",
    "LookupUnsupported",
    "Platform",
    "PlatformRegistry",
    "PublishRequest",
    "PublishResult",
    "SandboxSettings",
    "Violation",
]
