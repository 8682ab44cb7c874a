"""The OpenAPI document and a page that renders it with Redoc, served by Herald itself
(`/assets/redoc.standalone.js`): it works on a machine without internet."""

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
    <script src="/assets/redoc.standalone.js"></script>
  </body>
</html>
"""


class OpenApiSpec:
    """GET /openapi.json: built once, on first request, from the routing table."""

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._document = cache(build)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document()


#: Herald's own assets only. Redoc styles its elements inline (styled-components), draws
#: icons as data: URLs and runs its search in a worker made from a blob.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class Docs:
    """GET /docs: Redoc, pointed at /openapi.json."""

    def __init__(self, spec_url: str = "/openapi.json") -> None:
        self._html = _PAGE.format(spec_url=spec_url)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Content-Security-Policy", DOCS_CSP)
        resp.text = self._html
