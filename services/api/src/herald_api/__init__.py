"""Herald's HTTP API: a Falcon WSGI app built by `herald_api.app:get_app()`."""

__version__ = "0.1.0"
