"""The directory on each backend (SQLite in the test's folder, the real PostgreSQL
server), seeded with the demo directory, and Family A's messages as translated.

PostgreSQL tests use a fresh schema each, dropped afterwards. When the server
cannot be reached they fail: a missing database must not pass as a skip.
"""

from __future__ import annotations

import copy
import os
import uuid

import pytest
from sqlalchemy import text

from gateway.routing import Directory
from gateway.store.engine import make_engine

from .helpers import translate

from tests.conftest import POSTGRES_URL, copy_database  # noqa: E402  (the shared PostgreSQL settings)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    """An engine on a database at the schema's head, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        made = make_engine(request.getfixturevalue("upgraded_sqlite")(tmp_path / "directory.sqlite3"))
    else:
        _, connect_args = request.getfixturevalue("upgraded_postgres_schema")
        made = make_engine(POSTGRES_URL, connect_args=connect_args)
    yield made
    made.dispose()


@pytest.fixture
def empty_directory(engine) -> Directory:
    return Directory(engine)


@pytest.fixture
def directory(engine) -> Directory:
    """The demo directory (gateway/routing/data/family-a-directory.json)."""
    made = Directory(engine)
    made.load_seed()
    return made


@pytest.fixture(scope="session")
def sqlite_directory(tmp_path_factory, sqlite_template) -> Directory:
    """One seeded SQLite directory shared by the pure rule tests (they only read it)."""
    made = make_engine(copy_database(sqlite_template, tmp_path_factory.mktemp("routing") / "directory.sqlite3"))
    seeded = Directory(made)
    seeded.load_seed()
    return seeded


@pytest.fixture(scope="session")
def _family_a() -> dict[str, list[dict]]:
    return {"ppn": translate("ppn-xml", "ppn-sample.xml"),
            "school": translate("schoolsafe-csv", "schoolsafe-sample.csv")}


@pytest.fixture
def ppns(_family_a) -> list[dict]:
    """Dorset Police's two DomesticAbuse notices, one per child (fresh copies)."""
    return copy.deepcopy(_family_a["ppn"])


@pytest.fixture
def school_referral(_family_a) -> dict:
    """Riverside Infant School's referral of Leo (Incident ID 4263)."""
    (bundle,) = copy.deepcopy(_family_a["school"])
    return bundle
