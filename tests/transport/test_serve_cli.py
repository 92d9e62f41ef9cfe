"""``gateway serve`` refuses clearly when it cannot serve (the running server is in test_mtls.py)."""

from __future__ import annotations

from gateway.cli import main


def test_serve_without_certificates_is_a_message(runner, tmp_path):
    result = runner.invoke(main, ["serve", "--certs", str(tmp_path)])
    assert result.exit_code == 1
    assert "gateway certs init" in result.output
    assert "Traceback" not in result.output


def test_serve_help_names_the_certs_directory(runner):
    result = runner.invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--certs" in result.output
