"""``gateway audit verify`` and ``gateway audit checkpoint`` as an operator runs them, on both engines."""

from __future__ import annotations

from gateway.cli import main
from tests.audit.conftest import append, tamper
from tests.conftest import POSTGRES_URL


def _url(store) -> str:
    if store.engine.dialect.name == "postgresql":
        return f"{POSTGRES_URL}?options=-csearch_path%3D{store.schema}"
    return store.engine.url.render_as_string(hide_password=False)


def test_verify_says_intact_then_names_the_edited_record_and_exits_1(store, runner, deployment):
    append(store, 12)
    signed = runner.invoke(main, ["audit", "checkpoint", "--database", _url(store), "--certs", str(deployment.dir)])
    assert signed.exit_code == 0 and "checkpoint 1: record 12" in signed.output
    again = runner.invoke(main, ["audit", "checkpoint", "--database", _url(store), "--certs", str(deployment.dir)])
    assert again.exit_code == 0 and "nothing to sign" in again.output
    ok = runner.invoke(main, ["audit", "verify", "--database", _url(store), "--certs", str(deployment.dir)])
    assert ok.exit_code == 0, ok.output
    assert "12 records in order" in ok.output and "1 checked" in ok.output and "audit log intact" in ok.output
    tamper(store.engine, "UPDATE audit_event SET outcome = 'failure' WHERE seq = 5")
    bad = runner.invoke(main, ["audit", "verify", "--database", _url(store), "--certs", str(deployment.dir)])
    assert bad.exit_code == 1
    assert "FAIL record 5: edited" in bad.output and "the first at record 5" in bad.output
    assert "checkpoint" not in bad.output.split("FAIL record 5")[0]


def test_verify_without_certificates_says_so(store, runner, tmp_path):
    append(store, 2)
    refused = runner.invoke(main, ["audit", "verify", "--database", _url(store), "--certs", str(tmp_path)])
    assert refused.exit_code == 1 and "--no-signatures" in refused.output and "Traceback" not in refused.output
    unsigned = runner.invoke(main, ["audit", "verify", "--database", _url(store), "--no-signatures"])
    assert unsigned.exit_code == 0 and "not checked" in unsigned.output


def test_a_database_that_is_not_there_is_a_message_not_a_traceback(runner, tmp_path):
    result = runner.invoke(main, ["audit", "verify", "--no-signatures", "--database",
                                  f"sqlite:///{tmp_path / 'empty.sqlite3'}"])
    assert result.exit_code == 1 and "gateway db upgrade" in result.output
