"""A store on each backend: SQLite in the test's folder, and the real PostgreSQL server.

PostgreSQL tests use a fresh schema each, dropped afterwards, so parallel
runs do not collide. When the server cannot be reached they fail: a
missing database must not pass silently as a skip.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from gateway.store import SqlMessageStore
from gateway.store.engine import make_engine

from tests.conftest import POSTGRES_URL  # noqa: E402  (the shared PostgreSQL settings)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A :class:`SqlMessageStore` on a database at the schema's head, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        made = SqlMessageStore.from_url(request.getfixturevalue("upgraded_sqlite")(tmp_path / "store.sqlite3"))
    else:
        schema, connect_args = request.getfixturevalue("upgraded_postgres_schema")
        made = SqlMessageStore.from_url(POSTGRES_URL, connect_args=connect_args)
        made.schema = schema
    yield made
    made.close()
