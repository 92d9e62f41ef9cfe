"""The console's CSRF tokens: an HMAC of the agency and the hour under a server secret."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.config import Settings
from gateway.web.console import csrf

LA, SCHOOL = "urn:x-safeguarding:agency:la:850", "urn:x-safeguarding:agency:school:999101"
NOW = dt.datetime(2019, 6, 7, 16, 59, tzinfo=dt.timezone.utc)


def test_a_token_is_valid_for_its_agency_and_secret_only():
    one, two = csrf.secret_for(Settings(console_secret="one")), csrf.secret_for(Settings(console_secret="two"))
    token = csrf.token(one, LA, NOW)
    assert csrf.valid(one, LA, token, NOW)
    assert not csrf.valid(one, SCHOOL, token, NOW)
    assert not csrf.valid(two, LA, token, NOW)
    hour, mac = token.split(".")
    for presented in (None, "", mac, token[:-1], f"{int(hour) + 1}.{mac}", f"x.{mac}", f"{hour}.{mac.upper()}", 123):
        assert not csrf.valid(one, LA, presented, NOW), presented


def test_a_token_lasts_a_working_day():
    secret = csrf.secret_for(Settings(console_secret="s"))
    token = csrf.token(secret, LA, NOW)
    assert csrf.valid(secret, LA, token, NOW + dt.timedelta(hours=csrf.MAX_AGE_HOURS))
    assert not csrf.valid(secret, LA, token, NOW + dt.timedelta(hours=csrf.MAX_AGE_HOURS + 1))
    assert not csrf.valid(secret, LA, token, NOW - dt.timedelta(hours=1))  # not from the future either


def test_without_a_console_secret_the_gateway_key_is_the_secret(tmp_path, demo_pki):
    from_key = csrf.secret_for(Settings(certs_dir=demo_pki.certs))
    assert from_key == csrf.secret_for(Settings(certs_dir=demo_pki.certs))  # every process of a deployment
    assert from_key != csrf.secret_for(Settings(certs_dir=demo_pki.certs, console_secret="set"))
    with pytest.raises(csrf.CsrfError, match="GATEWAY_CONSOLE_SECRET"):
        csrf.secret_for(Settings(certs_dir=tmp_path / "none"))


def test_the_console_secret_comes_from_the_environment():
    assert Settings.from_env({"GATEWAY_CONSOLE_SECRET": "s3cret"}).console_secret == "s3cret"
    assert Settings.from_env({}).console_secret is None
