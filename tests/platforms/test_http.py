"""What every adapter's HTTP shares: public addresses only, capped media, URLs shown safely."""

from __future__ import annotations

import httpx
import pytest

from herald_common.errors import PermanentError
from herald_common.platforms.http import (
    PublicOnlyTransport,
    media_bytes,
    refuse_private,
    shown_url,
)
from tests.platforms.servers import FakeMediaHost, running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",
        "::127.0.0.1",
        "[::127.0.0.1]",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",
        "64:ff9b::a00:1",
    ],
)
def test_non_public_addresses_are_refused(host):
    with pytest.raises(PermanentError, match="non-public address") as raised:
        refuse_private(host, 443)
    assert raised.value.message == f"refusing to connect to {host}: it is a non-public address"


def test_a_name_that_resolves_inward_is_refused_without_saying_where():
    with pytest.raises(PermanentError) as raised:
        refuse_private("localhost", 443)
    assert raised.value.message == (
        "refusing to connect to localhost: it resolves to a non-public address"
    )


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(host):
    refuse_private(host, 443)


def test_a_media_url_on_an_internal_address_is_never_fetched():
    # Given a file served on loopback, and the production client that allows only public hosts
    with running(FakeMediaHost({"/a.png": (PNG, "image/png")})) as host:
        client = httpx.Client(transport=PublicOnlyTransport(allow_private=False))

        # When an adapter fetches it
        with pytest.raises(PermanentError, match="non-public address"):
            media_bytes(client, "x", {"url": f"{host.url}/a.png"})

        # Then the server never saw a request
        assert host.requests == []


def test_media_over_the_cap_is_refused(client):
    with running(FakeMediaHost({"/a.png": (PNG, "image/png")})) as host:
        with pytest.raises(PermanentError, match="at most 1,000"):
            media_bytes(client, "x", {"url": f"{host.url}/a.png"}, max_bytes=1000)
        content, mime = media_bytes(client, "x", {"url": f"{host.url}/a.png"})
        assert (content, mime) == (PNG, "image/png")


def test_urls_in_messages_lose_their_query_and_credentials():
    url = "https://user:pw@cdn.example.com/v/a.mp4?X-Amz-Signature=abc123&token=t0k"
    assert shown_url(url) == "https://cdn.example.com/v/a.mp4"


def test_a_failed_fetch_names_the_url_without_its_signature(client):
    with running(FakeMediaHost({})) as host, pytest.raises(PermanentError) as raised:
        media_bytes(client, "x", {"url": f"{host.url}/gone.png?sig=s3cr3t"})
    assert "s3cr3t" not in raised.value.message
    assert "/gone.png" in raised.value.message
