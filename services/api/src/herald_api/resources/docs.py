"""The OpenAPI document and a page that renders it."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import falcon

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Herald API</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
  </head>
  <body>
    <redoc spec-url="{spec_url}"></redoc>
    <script src="https://cdn.redoc.ly/redoc/v2.1.5/bundles/redoc.standalone.js"></script>
  </body>
</html>
"""


class OpenApiSpec:
    """GET /openapi.json: built once, on first request, from the routing table."""

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._document = cache(build)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document()


class Docs:
    """GET /docs: Redoc, pointed at /openapi.json."""

    def __init__(self, spec_url: str = "/openapi.json") -> None:
        self._html = _PAGE.format(spec_url=spec_url)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self._html
