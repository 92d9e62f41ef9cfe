"""``gateway hold`` and ``gateway retention purge`` as an operator runs them (the real command, both engines)."""

from __future__ import annotations

import json

from sqlalchemy import select

from gateway.audit.models import AuditEventRow
from gateway.cli import main
from gateway.retention.models import LegalHoldRow
from gateway.store.engine import read_only
from gateway.store.models import AcceptedMessageRow

from tests.retention.conftest import NOW, OLD, RECENT, RETENTION_DAYS, Person

ALEX = Person("Alex", "Oldcase", "2010-01-02", 101)
CAL = Person("Cal", "Newcase", "2012-03-04", 103)


def env(gateway, **more) -> dict:
    # The replay clock puts the command's "now" at the tests' NOW (it logs that it is a demo clock).
    return {"GATEWAY_DATABASE_URL": str(gateway.store.engine.url.render_as_string(hide_password=False)),
            "GATEWAY_RETENTION_DAYS": str(RETENTION_DAYS), "GATEWAY_CLOCK_START": NOW.isoformat(), **more}


def test_holds_are_placed_listed_and_released_with_clear_refusals(gateway, runner):
    gateway.send(ALEX, OLD)
    alex = gateway.person_of(ALEX)
    run = lambda *args: runner.invoke(main, list(args), env=env(gateway))  # noqa: E731

    unknown = run("hold", "place", "no-such-person", "--reason", "Inquiry FIC-1", "--by", "R. Manager")
    assert unknown.exit_code == 1 and "no person no-such-person" in unknown.output
    assert run("hold", "place", alex, "--by", "R. Manager").exit_code == 2          # --reason is required
    blank = run("hold", "place", alex, "--reason", "  ", "--by", "R. Manager")
    assert blank.exit_code == 1 and "needs a reason" in blank.output

    placed = run("hold", "place", alex, "--reason", "Inquiry FIC-1", "--by", "R. Manager")
    assert placed.exit_code == 0 and f"placed on person {alex}" in placed.output
    again = run("hold", "place", alex, "--reason", "Inquiry FIC-1", "--by", "R. Manager")
    assert again.exit_code == 1 and "already held" in again.output
    listed = json.loads(run("hold", "list", "--json").output)
    assert [(h["person_id"], h["reason"], h["placed_by"], h["released_at"]) for h in listed] == [
        (alex, "Inquiry FIC-1", "R. Manager", None)]

    released = run("hold", "release", alex, "--reason", "Inquiry closed", "--by", "R. Manager")
    assert released.exit_code == 0 and "released" in released.output
    assert run("hold", "list").output.strip() == "No active legal holds."
    history = run("hold", "list", "--all").output
    assert "Inquiry FIC-1" in history and "released" in history and "Inquiry closed" in history
    twice = run("hold", "release", alex, "--reason", "Inquiry closed", "--by", "R. Manager")
    assert twice.exit_code == 1 and "no active legal hold" in twice.output
    assert gateway.count(LegalHoldRow.__table__) == 1
    # Placing and releasing are audited (ids and codes only: the reason stays in legal_hold).
    with read_only(gateway.store.engine) as connection:
        audits = connection.execute(select(AuditEventRow.action, AuditEventRow.entities, AuditEventRow.detail).where(
            AuditEventRow.subtype == "legal-hold").order_by(AuditEventRow.seq)).all()
    assert [(a.action, json.loads(a.detail)["hold"]) for a in audits] == [("C", "placed"), ("U", "released")]
    assert all(["person", alex] in json.loads(a.entities) for a in audits)
    assert not any("Inquiry" in (a.entities + a.detail) for a in audits)


def test_purge_dry_run_lists_then_the_purge_deletes_and_says_what(gateway, runner):
    old = gateway.send(ALEX, OLD)
    gateway.send(CAL, RECENT)
    gateway.acknowledge_all()

    dry = runner.invoke(main, ["retention", "purge", "--dry-run"], env=env(gateway))
    assert dry.exit_code == 0, dry.output
    assert f"would purge message {old}" in dry.output
    assert "2 messages = 1 would be purged + 1 kept" in dry.output
    assert gateway.count(AcceptedMessageRow.__table__) == 2

    real = runner.invoke(main, ["retention", "purge", "--batch", "10", "--by", "R. Manager"], env=env(gateway))
    assert real.exit_code == 0, real.output
    assert "2 messages = 1 purged + 1 kept (1 within retention" in real.output and "+ 0 held" in real.output
    assert "accepted_message: 1 rows" in real.output
    assert "2 audit records written" in real.output      # the message and Alex
    assert gateway.count(AcceptedMessageRow.__table__) == 1


def test_a_pending_delivery_is_named_for_the_operator(gateway, runner):
    gateway.send(ALEX, OLD)       # its deliveries are still pending
    result = runner.invoke(main, ["retention", "purge"], env=env(gateway))
    assert result.exit_code == 0, result.output
    assert "0 purged" in result.output and "still pending" in result.output
    assert "gateway operator deliveries" in result.output


def test_bad_settings_are_refused_clearly(gateway, runner):
    for value, expected in (("soon", "GATEWAY_RETENTION_DAYS='soon'"), ("0", "at least 1 day")):
        result = runner.invoke(main, ["retention", "purge", "--dry-run"], env=env(gateway, GATEWAY_RETENTION_DAYS=value))
        assert result.exit_code == 1 and expected in result.output, result.output
        assert "Traceback" not in result.output
    assert runner.invoke(main, ["retention", "purge", "--batch", "0"], env=env(gateway)).exit_code == 2


def test_the_worker_runs_the_daily_purge_only_when_it_is_on(gateway, runner, deployment, caplog):
    caplog.set_level("INFO", logger="gateway.retention.schedule")
    worker_env = env(gateway, GATEWAY_CERTS_DIR=str(deployment.dir))
    off = runner.invoke(main, ["worker", "--once"], env=worker_env)
    assert off.exit_code == 0, off.output
    assert not [r for r in caplog.records if r.name == "gateway.retention.schedule"]

    on = runner.invoke(main, ["worker", "--once"], env=dict(worker_env, GATEWAY_RETENTION_PURGE_DAILY="on"))
    assert on.exit_code == 0, on.output
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.retention.schedule"
            and r.getMessage().startswith("daily retention purge")]

    bad = runner.invoke(main, ["worker", "--once"], env=dict(worker_env, GATEWAY_RETENTION_PURGE_DAILY="daily"))
    assert bad.exit_code == 1 and "GATEWAY_RETENTION_PURGE_DAILY='daily': use on or off" in bad.output
    none = runner.invoke(main, ["worker", "--once"], env=dict(worker_env, GATEWAY_RETENTION_PURGE_DAILY="on",
                                                              GATEWAY_RETENTION_DAYS="0"))
    assert none.exit_code == 1 and "GATEWAY_RETENTION_DAYS=0: give at least 1 day" in none.output
