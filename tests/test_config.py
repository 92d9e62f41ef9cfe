"""Settings come from GATEWAY_* variables in one place."""

import datetime as dt
from pathlib import Path

import pytest

from gateway.config import Settings, SettingsError


def test_environment_becomes_settings():
    settings = Settings.from_env({"GATEWAY_DATABASE_URL": "sqlite:///x.db", "GATEWAY_REPLAY_WINDOW_SECONDS": "60",
                                  "GATEWAY_CERTS_DIR": "/tmp/certs", "UNRELATED": "1"})
    assert settings.database_url == "sqlite:///x.db"
    assert settings.replay_window_seconds == 60
    assert settings.certs_dir == Path("/tmp/certs")


def test_a_bad_number_names_the_variable():
    with pytest.raises(SettingsError, match="GATEWAY_MAX_REQUEST_BYTES"):
        Settings.from_env({"GATEWAY_MAX_REQUEST_BYTES": "lots"})


def test_the_clock_is_real_time_unless_replaying():
    before = dt.datetime.now(dt.timezone.utc)
    assert Settings().clock()() >= before


def test_a_replay_clock_starts_at_the_given_instant_and_runs_on():
    clock = Settings(clock_start="2018-09-30T17:00:00+01:00").clock()
    first, second = clock(), clock()
    start = dt.datetime(2018, 9, 30, 16, 0, tzinfo=dt.timezone.utc)
    assert start <= first <= second < start + dt.timedelta(minutes=1)
    with pytest.raises(SettingsError, match="offset"):
        Settings(clock_start="2018-09-30T17:00:00").clock()
