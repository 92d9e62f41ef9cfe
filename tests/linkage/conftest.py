"""Linkage fixtures: the stores of tests/store (SQLite and the real PostgreSQL server)."""

from tests.store.conftest import store  # noqa: F401  (the same fixture on both engines)
