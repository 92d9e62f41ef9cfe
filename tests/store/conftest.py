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

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_schema():
    """Return ``(url, connect_args)`` for a fresh PostgreSQL schema, dropped after the test."""
    admin = make_engine(POSTGRES_URL)
    schema = f"test_{uuid.uuid4().hex}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema, {"options": f"-csearch_path={schema}", "application_name": schema}
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A :class:`SqlMessageStore` with its tables, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        made = SqlMessageStore.from_url(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'store.sqlite3'}")
    else:
        schema, connect_args = request.getfixturevalue("postgres_schema")
        made = SqlMessageStore.from_url(POSTGRES_URL, connect_args=connect_args)
        made.schema = schema
    yield made
    made.close()
