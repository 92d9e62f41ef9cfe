"""The console's CSRF tokens: an HMAC of the agency under a server secret."""

from __future__ import annotations

import pytest

from gateway.config import Settings
from gateway.web.console import csrf

LA, SCHOOL = "urn:x-safeguarding:agency:la:850", "urn:x-safeguarding:agency:school:999101"


def test_a_token_is_valid_for_its_agency_and_secret_only():
    one, two = csrf.secret_for(Settings(console_secret="one")), csrf.secret_for(Settings(console_secret="two"))
    token = csrf.token(one, LA)
    assert csrf.valid(one, LA, token)
    assert not csrf.valid(one, SCHOOL, token)
    assert not csrf.valid(two, LA, token)
    for presented in (None, "", token[:-1], token.upper() + "0", 123):
        assert not csrf.valid(one, LA, presented)


def test_without_a_console_secret_the_gateway_key_is_the_secret(tmp_path, demo_pki):
    from_key = csrf.secret_for(Settings(certs_dir=demo_pki.certs))
    assert from_key == csrf.secret_for(Settings(certs_dir=demo_pki.certs))  # every process of a deployment
    assert from_key != csrf.secret_for(Settings(certs_dir=demo_pki.certs, console_secret="set"))
    with pytest.raises(csrf.CsrfError, match="GATEWAY_CONSOLE_SECRET"):
        csrf.secret_for(Settings(certs_dir=tmp_path / "none"))


def test_the_console_secret_comes_from_the_environment():
    assert Settings.from_env({"GATEWAY_CONSOLE_SECRET": "s3cret"}).console_secret == "s3cret"
    assert Settings.from_env({}).console_secret is None
