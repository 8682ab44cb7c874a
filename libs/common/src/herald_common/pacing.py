"""Pacing publishes per account and per platform with Dramatiq's rate limiters.

Each adapter declares the paces its platform documents (`Platform.pacing`). Before a target is
claimed, the publisher asks the Pacer for a slot under every pace that applies; when one is
full, the target is not published and not failed: it goes back on the schedule a little later
(`wait_seconds`) and says why.

Limiters by window length:
* up to 15 minutes, Dramatiq's WindowRateLimiter: a sliding window kept as one counter per
  second, so its cost per acquire grows with the window (900 keys at most);
* longer windows (Instagram's 24 hours), a BucketRateLimiter with one bucket per window: a
  fixed window aligned to the epoch, which can admit up to twice the limit across a boundary.
  The adapters that have such limits also ask the platform for the quota left before
  publishing (Instagram's content_publishing_limit), which is the authority; the pace only
  spreads a burst out.

A slot taken under one pace is not given back when a later pace refuses (Dramatiq's limiters
cannot release a counted operation); paces err on the side of waiting.

The counters live in Redis in production (shared by every worker and replica) and in memory
with the in-process broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis
from dramatiq.broker import Broker
from dramatiq.rate_limits import BucketRateLimiter, RateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backend import RateLimiterBackend
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

from herald_common.platforms.base import Pace

#: Longest window kept as a sliding window of per-second counters.
MAX_SLIDING_WINDOW_SECONDS = 900
#: Bounds on how long a paced target waits before it is tried again.
MIN_WAIT_SECONDS = 1.0
MAX_WAIT_SECONDS = 900.0


@dataclass(frozen=True)
class Paced:
    """A pace that had no slot: how long to wait, and why, in words for the target's error."""

    wait_seconds: float
    reason: str


# Sum the window's per-second counters and take a slot in one atomic step. Dramatiq's
# RedisBackend.incr_and_sum watches one list of keys and sums another computed a moment later,
# so two workers at a second's boundary could both take the last slot (an integration test
# caught 4 posts out under a pace of 3).
_WINDOW_SCRIPT = """
local total = 0
for i = 1, #KEYS do
  total = total + tonumber(redis.call('GET', KEYS[i]) or '0')
end
if total >= tonumber(ARGV[1]) then
  return 0
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class AtomicWindowRateLimiter(WindowRateLimiter):
    """Dramatiq's sliding window, its check-and-take made one Lua script on Redis."""

    def __init__(self, backend: RedisBackend, key: str, *, limit: int, window: int) -> None:
        super().__init__(backend, key, limit=limit, window=window)
        self._script = backend.client.register_script(_WINDOW_SCRIPT)

    def _acquire(self) -> bool:
        keys = self._get_keys()
        return bool(self._script(keys=keys, args=[self.limit, self.window_millis]))


def limiter_backend(broker: Broker) -> RateLimiterBackend:
    """Redis when the broker is on Redis (counters shared by all workers), else in memory."""
    client = getattr(broker, "client", None)
    if isinstance(client, redis.Redis):
        return RedisBackend(client=client)
    return StubBackend()


class Pacer:
    """Hands out publish slots under each platform's paces."""

    def __init__(self, backend: RateLimiterBackend, *, namespace: str = "herald") -> None:
        self._backend = backend
        self._namespace = namespace

    def admit(self, platform: str, account_id: str, paces: Sequence[Pace]) -> Paced | None:
        """None when a slot was taken under every pace; else the first pace that is full."""
        for pace in paces:
            limiter = self._limiter(platform, account_id, pace)
            with limiter.acquire(raise_on_failure=False) as acquired:
                if not acquired:
                    return self._refusal(platform, pace)
        return None

    def _limiter(self, platform: str, account_id: str, pace: Pace) -> RateLimiter:
        owner = account_id if pace.scope == "account" else "*"
        key = f"{self._namespace}:pace:{platform}:{owner}:{pace.limit}/{pace.window_seconds}"
        limiter: RateLimiter
        if pace.window_seconds <= MAX_SLIDING_WINDOW_SECONDS:
            window = (
                AtomicWindowRateLimiter
                if isinstance(self._backend, RedisBackend)
                else WindowRateLimiter  # in memory: its lock makes it atomic already
            )
            limiter = window(self._backend, key, limit=pace.limit, window=pace.window_seconds)
        else:
            limiter = BucketRateLimiter(
                self._backend, key, limit=pace.limit, bucket=pace.window_seconds * 1000
            )
        return limiter

    @staticmethod
    def _refusal(platform: str, pace: Pace) -> Paced:
        # The average spacing the pace allows: the earliest a slot can be expected to free up
        # if the burst that filled the window was spread evenly.
        wait = min(max(pace.window_seconds / pace.limit, MIN_WAIT_SECONDS), MAX_WAIT_SECONDS)
        who = "this account" if pace.scope == "account" else f"all {platform} accounts"
        return Paced(
            wait_seconds=wait,
            reason=(
                f"paced: {platform} allows {pace.limit} posts per {_duration(pace.window_seconds)}"
                f" for {who}; waiting {wait:.0f} s for a slot"
            ),
        )


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return "24 hours" if days == 1 else f"{days} days"
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}" + ("s" if count > 1 else "")
    return f"{seconds} seconds"
