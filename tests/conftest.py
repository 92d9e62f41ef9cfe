"""Fixtures that build on each other: settings -> app -> client/runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.app import create_app
from gateway.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = FIXTURES / "samples"


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings for one test: a fresh SQLite file in the test's own folder."""
    return Settings(database_url=f"sqlite:///{tmp_path / 'gateway.sqlite3'}")


@pytest.fixture
def app(settings):
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def samples() -> Path:
    return SAMPLES
