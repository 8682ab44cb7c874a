"""gunicorn settings: `gunicorn -c python:herald_api.gunicorn_conf 'herald_api.app:get_app()'`.

Bind address from API_HOST/API_PORT (the settings' defaults otherwise), worker processes from
WEB_CONCURRENCY (default 2), four threads each, access log on stdout.
"""

from __future__ import annotations

import os

from herald_common.settings import Settings

_settings = Settings()

bind = f"{os.environ.get('API_HOST', _settings.api_host)}:{os.environ.get('API_PORT', _settings.api_port)}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Each worker builds its own engine and broker in get_app(); nothing is shared across a fork.
preload_app = False
