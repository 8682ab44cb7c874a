"""Deriving a post's status from its targets."""

from __future__ import annotations

import pytest

from herald_common.lifecycle import derive_post_status


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([], None),
        (["draft", "draft"], "draft"),
        (["draft", "canceled"], "draft"),
        (["scheduled", "published"], "scheduled"),
        (["queued"], "scheduled"),
        (["publishing", "failed"], "scheduled"),
        (["retrying"], "scheduled"),
        (["published", "published"], "published"),
        (["published", "canceled"], "published"),
        (["published", "failed"], "partially_published"),
        (["published", "unknown"], "partially_published"),
        (["failed", "unknown"], "failed"),
        (["canceled", "canceled"], "canceled"),
    ],
)
def test_a_posts_status_follows_its_targets(targets, expected):
    # Given targets in these states, When the post's status is derived, I expect:
    assert derive_post_status(targets) == expected
