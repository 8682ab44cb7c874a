"""The `token-refresh` queue's actor: thin; the work is in herald_common.tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from pydantic import ValidationError

from herald_common.contracts import REFRESH_ACCOUNT, RefreshAccountPayload
from herald_common.tokens import TokenKeeper


def declare_actors(broker: Broker, keeper: Callable[[], TokenKeeper]) -> dramatiq.Actor[Any, Any]:
    """Declare `refresh_account` on `broker`; `keeper` hands out the process's TokenKeeper.

    A platform's failure is not a Dramatiq retry: the keeper puts the account back on the
    refresh schedule with its own backoff (the schedule lives in the database). Dramatiq's
    retries cover the worker's own infrastructure (the database away) only.
    """

    def refresh_account(tenant_id: str, account_id: str, reason: str = "expiring") -> None:
        payload = RefreshAccountPayload(tenant_id=tenant_id, account_id=account_id, reason=reason)
        keeper().refresh(payload.tenant_id, payload.account_id)

    return dramatiq.actor(
        refresh_account,
        broker=broker,
        throws=(ValidationError, TypeError),
        **REFRESH_ACCOUNT.actor_options(),
    )
