"""The baseline for the API figure: a bare Falcon app with one `POST /v1/posts`.

It does what any JSON endpoint must (parse the body, answer 201 with a small JSON document)
and nothing of Herald's (no key, no database, no validation), and runs under the same
gunicorn settings as the API (`gunicorn -c herald_api/gunicorn_conf.py
'bench.bare_app:create_app()'`), so the ratio of the two is what Herald's own work costs.
"""

from __future__ import annotations

import uuid

import falcon


class PostCollection:
    """Accepts any JSON body and answers like a created post."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.get_media()
        resp.status = falcon.HTTP_201
        resp.media = {
            "id": str(uuid.uuid4()),
            "status": "scheduled",
            "content": body.get("content") if isinstance(body, dict) else None,
        }


class Ready:
    """Answers 200 once the worker serves (the benchmark waits for it)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ready"}


def create_app() -> falcon.App:
    """The bare app (gunicorn's entry point)."""
    app = falcon.App()
    app.add_route("/v1/posts", PostCollection())
    app.add_route("/ready", Ready())
    return app
