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
    from gateway.store import crypto

    # The data keys, loaded at start: a missing or wrong key file stops here, naming GATEWAY_DATA_KEYS.
    crypto.use(crypto.KeyRing.from_settings(settings))
    app = Flask("gateway")
    app.config["GATEWAY_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes

    from gateway import audit, web

    audit.configure(settings)  # the audit log is on unless a benchmark's baseline turns it off

    if settings.clock_start:
        from gateway.transport.views import CLOCK_KEY

        app.config[CLOCK_KEY] = settings.clock()
    web.init_app(app)

    from gateway.linkage.views import linkage_step
    from gateway.transport.views import register_accept_step

    # Who each accepted message is about, linked to the person index, its events, deadlines and escalations,
    # in the same transaction (after routing, whose deliveries it reads).
    register_accept_step(app, linkage_step(app))
    return app
