"""Prometheus metrics Herald's own code records (prometheus-client's default registry).

Names follow Prometheus conventions: `_total` counters, base units, bounded label values (a
platform name, an outcome), never ids. Each process's /metrics endpoint serves them.
"""

from __future__ import annotations

from prometheus_client import Counter

TOKEN_REFRESHES = Counter(
    "herald_token_refreshes_total",
    "Token refreshes by platform and outcome (refreshed, retry, needs_reauth, error, skipped).",
    ["platform", "outcome"],
)
ACCOUNTS_NEEDING_REAUTH = Counter(
    "herald_accounts_needs_reauth_total",
    "Accounts that turned needs_reauth, by platform and by what found it (refresh, publish).",
    ["platform", "source"],
)
