"""GET /assets/{name}: the files Herald's pages load (the console's style and script, Redoc
for /docs), served from the package, so no page needs anything from the internet.

Vendored: Redoc 2.5.4 (`redoc.standalone.js`, MIT, `redoc.LICENSE`; the licences of what it
bundles in `redoc.standalone.js.LICENSE.txt`), from the npm package `redoc@2.5.4`
(`npm pack redoc@2.5.4`, `package/bundles/`), with one change: its sidebar footer loads
Redocly's logo from their CDN, so that image's URL is an empty inline SVG instead
(`src:"https://cdn.redoc.ly/redoc/logo-mini.svg"` → `src:"data:image/svg+xml,…"`); the footer's
"API docs by Redocly" link stays.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

import falcon

#: Every file served, and its type; nothing else in the folder is reachable.
ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "redoc.LICENSE": "text/plain; charset=utf-8",
    "redoc.standalone.js.LICENSE.txt": "text/plain; charset=utf-8",
}


@cache
def _read(name: str) -> tuple[bytes, str]:
    data = files("herald_api").joinpath("static", name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


class Assets:
    """GET /assets/{name}"""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        content_type = ASSETS.get(name)
        if content_type is None:
            raise falcon.HTTPNotFound(description=f"no asset {name!r}")
        data, etag = _read(name)
        resp.etag = etag
        if req.if_none_match and any(t == etag for t in req.if_none_match):
            resp.status = 304
            return
        resp.content_type = content_type
        resp.data = data
        resp.set_header("Cache-Control", "public, max-age=3600")
        resp.set_header("X-Content-Type-Options", "nosniff")
