"""The Flask application factory."""

from __future__ import annotations

from flask import Flask

from gateway.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Return a configured gateway app; nothing happens at import time.

    Each sub-package contributes a blueprint through ``init_app`` so that the
    factory only wires things together.
    """
    settings = settings or Settings.from_env()
    app = Flask("gateway")
    app.config["GATEWAY_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes

    from gateway import web

    if settings.clock_start:
        from gateway.transport.views import CLOCK_KEY

        app.config[CLOCK_KEY] = settings.clock()
    web.init_app(app)

    from gateway.store.people import record_people
    from gateway.transport.views import register_accept_step

    # Who each accepted message is about, searchable, in the same transaction.
    register_accept_step(app, record_people)
    return app
