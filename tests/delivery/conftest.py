"""Delivery tests' stores, on both engines.

The signers, LA 999's identity, ``accept``, ``step_to`` and the receiving
endpoints are shared with tests/audit: they are in tests/shared_delivery.py.
PostgreSQL tests use a fresh schema and FAIL when the server is unreachable.
"""

from __future__ import annotations

import pytest

from gateway.store import SqlMessageStore


# Stores ------------------------------------------------------------------------------------------

@pytest.fixture
def postgres_url(upgraded_postgres_schema) -> str:
    """A URL (with its search_path) for a fresh PostgreSQL schema at the schema's head, dropped after the test."""
    return upgraded_postgres_schema.url


@pytest.fixture
def sqlite_url(tmp_path, upgraded_sqlite) -> str:
    """A fresh SQLite database at the schema's head."""
    return upgraded_sqlite(tmp_path / "gateway.sqlite3")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """The database URL on each engine."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


@pytest.fixture
def store(database_url):
    made = SqlMessageStore.from_url(database_url)
    yield made
    made.close()

