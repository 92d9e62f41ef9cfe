"""``gateway operator`` (what operators see and do) and ``gateway worker`` errors, as a user runs them."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.delivery.models import DEAD_LETTERED, PENDING, DeliveryRow
from gateway.delivery.outbox import outbox_step
from gateway.delivery.services import SqlOutbox
from gateway.routing import Unroutable
from gateway.store import SqlMessageStore

from tests.shared_delivery import LA, StaticDirectory, mailbox_agency


@pytest.fixture
def run(sqlite_url, deployment):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), env={"GATEWAY_DATABASE_URL": sqlite_url,
                                                     "GATEWAY_CERTS_DIR": str(deployment.dir)})

    return invoke


@pytest.fixture
def store(sqlite_url):
    made = SqlMessageStore.from_url(sqlite_url)
    yield made
    made.close()


def test_operator_sees_and_resolves_unroutable_messages(run, store, accept):
    empty = run("operator", "unroutable")
    assert empty.exit_code == 0 and "No unroutable messages." in empty.output
    nobody = outbox_step(lambda b, now, d: Unroutable(None, "no-routing-rule", "no routing rule for event 'x'"),
                         StaticDirectory())
    record, _ = accept(store, nobody)
    listed = run("operator", "unroutable")
    assert listed.exit_code == 0, listed.output
    assert record.message_id in listed.output and "no routing rule for event 'x'" in listed.output
    assert "OPEN" in listed.output and "1 open of 1 listed" in listed.output
    entry_id = listed.output.split()[0]

    resolved = run("operator", "resolve", entry_id, "--note", "sent to LA 999 MASH by secure email")
    assert resolved.exit_code == 0 and "Resolved" in resolved.output
    assert "No unroutable messages." in run("operator", "unroutable").output
    assert "sent to LA 999 MASH by secure email" in run("operator", "unroutable", "--all").output
    missing = run("operator", "resolve", "nope", "--note", "x")
    assert missing.exit_code != 0 and "no unroutable entry nope" in missing.output


def test_operator_lists_and_retries_dead_letters(run, store, accept, step_to):
    accept(store, step_to(StaticDirectory(mailbox_agency("la", "999", "Fictional Borough")), LA))
    with store.transaction() as unit:
        row = unit.session.query(DeliveryRow).one()
        row.state, row.last_error = DEAD_LETTERED, "not acknowledged within the maximum age (5.0 days)"
        delivery_id = row.id
    listed = run("operator", "deliveries", "--state", "dead-lettered")
    assert listed.exit_code == 0, listed.output
    assert "dead-lettered: 1" in listed.output and delivery_id in listed.output
    assert "maximum age" in listed.output

    retried = run("operator", "retry", delivery_id)
    assert retried.exit_code == 0 and "pending again" in retried.output
    with store.transaction() as unit:
        (again,) = SqlOutbox(unit.session).deliveries()
    assert again.state == PENDING and again.expires_at > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=4)
    refused = run("operator", "retry", delivery_id)
    assert refused.exit_code != 0 and "only a dead-lettered delivery" in refused.output
    assert run("operator", "retry", "nope").exit_code != 0


def test_worker_once_with_nothing_to_do_exits_cleanly(run):
    result = run("worker", "--once")
    assert result.exit_code == 0, result.output


def test_worker_reports_missing_certificates_and_a_bad_lease(run, tmp_path):
    (tmp_path / "empty").mkdir()
    missing = run("worker", "--once", "--certs", str(tmp_path / "empty"))
    assert missing.exit_code != 0 and "gateway certs init" in missing.output
    short = run("worker", "--once", "--lease-seconds", "5", "--timeout-seconds", "10")
    assert short.exit_code != 0 and "lease" in short.output
