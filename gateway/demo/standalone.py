"""A whole gateway in one folder and this process, for the tools that drive its app without a server.

``bench/limits.py`` (bounded cost of hostile input) and ``fuzz/targets.py`` (the fuzzers' promises) both
need the same thing: a development PKI, a SQLite database at the schema's head holding the seeded
directory, and the app on them with its clock fixed. It is set up here, once.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask


def standalone_app(root: Path, now: dt.datetime, **settings) -> Flask:
    """Return the gateway's app on a fresh deployment in ``root`` (``certs/`` and ``gateway.sqlite3``, which
    must not exist yet), its clock stopped at ``now``; ``settings`` are :class:`~gateway.config.Settings`
    fields beside the database and the certificates."""
    from gateway.app import create_app
    from gateway.config import Settings
    from gateway.routing import Directory
    from gateway.signing import pki
    from gateway.store import open_store, schema
    from gateway.transport.views import CLOCK_KEY

    pki.create_deployment(root / "certs", now=now)
    url = f"sqlite:///{root / 'gateway.sqlite3'}"
    schema.upgrade(url)
    store = open_store(url)
    try:
        Directory(store.engine).load_seed()
    finally:
        store.close()
    app = create_app(Settings(database_url=url, certs_dir=root / "certs", **settings))
    app.config.update(TESTING=True, **{CLOCK_KEY: lambda: now})
    return app
