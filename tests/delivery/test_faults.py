"""Fault tests with real processes and sockets on 127.0.0.1: ``gateway worker`` processes, receiving endpoints.

Waits are bounded (they fail, never hang) and every process started here is
stopped. Nothing asserts how long anything took.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.delivery.models import ACKNOWLEDGED, IN_FLIGHT, DeliveryRow
from gateway.store import SqlMessageStore

from tests.shared_delivery import LA, StaticDirectory, mailbox_agency, push_agency, stop_process, wait_until

pytestmark = pytest.mark.slow


def start_worker(database_url: str, deployment, log: Path, *options: str) -> subprocess.Popen:
    """Start ``gateway worker`` as its own process (the real command, from Settings in the environment)."""
    env = dict(os.environ, GATEWAY_DATABASE_URL=database_url, GATEWAY_CERTS_DIR=str(deployment.dir),
               PYTHONUNBUFFERED="1")
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker", *options],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


def rows(store: SqlMessageStore) -> list[DeliveryRow]:
    with store.transaction() as unit:
        return list(unit.session.scalars(select(DeliveryRow).order_by(DeliveryRow.id)))


def test_worker_killed_mid_delivery_then_restarted_loses_nothing_and_applies_nothing_twice(
        sqlite_url, accept, step_to, receivers, la_identity, deployment, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()  # the receiver applies each message, then holds its answer while this file exists
    receiver = receivers.start(la_identity, hold_file=hold)
    directory = StaticDirectory(push_agency("la", "999", "Fictional Borough", receiver.url),
                                mailbox_agency("school", "999101", "Fictional Primary School"))
    store = SqlMessageStore.from_url(sqlite_url)
    workers: list[subprocess.Popen] = []
    try:
        records = [accept(store, step_to(directory, LA))[0] for _ in range(6)]
        # A short lease so the restarted worker takes over soon; the timeout is below it, as the worker demands.
        timing = ("--lease-seconds", "6", "--timeout-seconds", "5", "--poll-seconds", "0.1")
        workers.append(start_worker(sqlite_url, deployment, tmp_path / "worker-1.log", "--concurrency", "2",
                                    *timing))
        wait_until(lambda: len(receiver.receipts.applied()) == 2, what="two messages to reach the receiver")
        workers[0].kill()  # SIGKILL: no clean-up, its two claims stay in flight
        workers[0].wait(10)
        assert workers[0].returncode == -9
        killed = {row.id for row in rows(store) if row.state == IN_FLIGHT}
        assert len(killed) == 2  # killed in the middle of delivering both
        hold.unlink()

        workers.append(start_worker(sqlite_url, deployment, tmp_path / "worker-2.log", *timing))
        wait_until(lambda: {row.state for row in rows(store)} == {ACKNOWLEDGED}, timeout=45,
                   what="every delivery to be acknowledged after the restart")
        final = rows(store)
    finally:
        for process in workers:
            stop_process(process)
        store.close()

    applied = receiver.receipts.applied()
    assert sorted(a.message_id for a in applied) == sorted(r.message_id for r in records)  # nothing lost
    # Applied once each. The two killed mid-delivery arrived twice (at-least-once) and the
    # receiver recognised the second arrival of each by its message id.
    raw = receiver.receipts.raw_counts()
    redelivered = {row.payload_message_id for row in final if row.id in killed}
    assert {mid: n for mid, n in raw.items() if n > 1} == {mid: 2 for mid in redelivered}
    assert all(a.receipts == raw[a.message_id] for a in applied)
    assert {row.attempts for row in final if row.id in killed} == {2}
    assert {row.attempts for row in final if row.id not in killed} == {1}


@pytest.mark.postgres
def test_three_worker_processes_on_postgresql_deliver_each_message_once(
        postgres_url, accept, step_to, receivers, la_identity, deployment, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    receiver = receivers.start(la_identity, hold_file=hold)
    directory = StaticDirectory(push_agency("la", "999", "Fictional Borough", receiver.url),
                                mailbox_agency("school", "999101", "Fictional Primary School"))
    store = SqlMessageStore.from_url(postgres_url)
    workers: list[subprocess.Popen] = []
    try:
        records = [accept(store, step_to(directory, LA))[0] for _ in range(60)]
        for n in range(3):
            # One destination here: its cap on deliveries in flight must leave room for all three workers.
            workers.append(start_worker(postgres_url, deployment, tmp_path / f"worker-{n}.log", "--once",
                                        "--concurrency", "4", "--per-destination", "12", "--poll-seconds", "0.1"))
        # Hold the receiver's answers until all three workers hold claims at once: they run
        # concurrently, and SKIP LOCKED must keep their claims apart.
        wait_until(lambda: len({row.claimed_by for row in rows(store) if row.state == IN_FLIGHT}) == 3,
                   what="three workers to hold claims at the same time")
        in_flight = [row for row in rows(store) if row.state == IN_FLIGHT]
        assert len(in_flight) == 12  # 4 each, no row claimed twice
        hold.unlink()
        for process in workers:
            process.wait(60)
        assert [process.returncode for process in workers] == [0, 0, 0]
        final = rows(store)
    finally:
        for process in workers:
            stop_process(process)
        store.close()

    assert {row.state for row in final} == {ACKNOWLEDGED}
    assert {row.attempts for row in final} == {1}  # each delivery made once
    by_worker = collections.Counter(row.claimed_by for row in final)
    assert len(by_worker) == 3 and sum(by_worker.values()) == 60
    applied = receiver.receipts.applied()
    assert sorted(a.message_id for a in applied) == sorted(r.message_id for r in records)
    assert {a.receipts for a in applied} == {1}
    # Not even an HTTP-level duplicate: every message id reached the receiver in exactly one request.
    assert set(receiver.receipts.raw_counts().values()) == {1}
    print(f"\nthree PostgreSQL workers delivered 60 messages, each once: {dict(by_worker)}")
