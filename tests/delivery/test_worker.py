"""OutboxWorker in this process, against real receiving endpoints over mutual TLS, with an injected clock."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random

import pytest
from sqlalchemy import select

from gateway.demo.processes import free_port
from gateway.delivery.models import ACKNOWLEDGED, DEAD_LETTERED, IN_FLIGHT, KIND_NOTICE, MAILBOX, PENDING, DeliveryRow
from gateway.delivery.responses import read_acknowledgement
from gateway.delivery.services import SqlOutbox
from gateway.delivery.worker import Backoff, OutboxWorker
from gateway.signing import TrustAnchor, verify_message
from gateway.signing.messages import message_header
from gateway.transport.client import AgencyClient

from tests.shared_delivery import LA, LA2, SCHOOL, T0, StaticDirectory, mailbox_agency, push_agency


class Clock:
    def __init__(self, now: dt.datetime = T0):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_worker(deployment, gateway_signer, clock):
    made = []

    def build(store, directory=None, **options) -> OutboxWorker:
        options = {"rng": random.Random(5), "concurrency": 2, "clock": clock, **options}
        worker = OutboxWorker(store, AgencyClient.for_certs_dir(deployment.dir, timeout=10),
                              signer=lambda: gateway_signer, directory=directory, **options)
        made.append(worker)
        return worker

    yield build
    for worker in made:
        worker.close()


def _deliveries(store) -> list[DeliveryRow]:
    with store.transaction() as unit:
        return list(unit.session.scalars(select(DeliveryRow).order_by(DeliveryRow.created_at, DeliveryRow.id)))


def _original_and_notice(store) -> tuple[DeliveryRow, DeliveryRow]:
    by_kind = {row.kind: row for row in _deliveries(store)}
    assert len(by_kind) == 2
    return by_kind["message"], by_kind[KIND_NOTICE]


def _school_directory(endpoint: str) -> StaticDirectory:
    return StaticDirectory(push_agency("la", "999", "Fictional Borough", endpoint),
                           mailbox_agency("school", "999101", "Fictional Primary School"))


# Backoff -------------------------------------------------------------------------------------------

def test_backoff_doubles_up_to_the_cap_with_bounded_jitter():
    backoff = Backoff(dt.timedelta(seconds=10), dt.timedelta(minutes=30), jitter=0.5)
    ceilings = [backoff.ceiling(n).total_seconds() for n in range(1, 10)]
    assert ceilings == [10, 20, 40, 80, 160, 320, 640, 1280, 1800]
    rng = random.Random(42)
    for attempts in range(1, 40):
        for _ in range(50):
            delay = backoff.delay(attempts, rng)
            assert backoff.ceiling(attempts) * 0.5 <= delay <= backoff.ceiling(attempts)
    # Seeded jitter: the same schedule every run, and spread out (not all the same).
    first = [backoff.delay(3, random.Random(7)).total_seconds() for _ in range(2)]
    assert first[0] == first[1]
    spread = {round(backoff.delay(3, rng).total_seconds(), 3) for _ in range(20)}
    assert len(spread) > 10


def test_backoff_refuses_nonsense():
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
    with pytest.raises(ValueError):
        Backoff(dt.timedelta(seconds=10), dt.timedelta(seconds=5))


# Delivering ---------------------------------------------------------------------------------------

def test_an_acknowledgement_closes_the_delivery(store, accept, step_to, receivers, la_identity, make_worker, clock):
    receiver = receivers.start(la_identity)
    directory = _school_directory(receiver.url)
    record, _ = accept(store, step_to(directory, LA))
    worker = make_worker(store, directory)
    report = worker.run_once()
    assert (report.claimed, report.acknowledged) == (1, 1)
    (row,) = _deliveries(store)
    assert (row.state, row.attempts, row.acknowledged_at, row.claim_token) == (ACKNOWLEDGED, 1, T0, None)
    (applied,) = receiver.receipts.applied()
    assert applied.message_id == record.message_id and applied.sender == SCHOOL and applied.receipts == 1
    assert not worker.run_once().busy  # nothing left to do


def test_receiver_down_for_a_while_then_up_gets_everything(store, accept, step_to, receivers, la_identity,
                                                            make_worker, clock, make_message):
    port = free_port()  # nothing listens here yet
    directory = _school_directory(f"https://127.0.0.1:{port}/")
    records = [accept(store, step_to(directory, LA))[0] for _ in range(5)]
    worker = make_worker(store, directory, concurrency=4,
                         backoff=Backoff(dt.timedelta(seconds=10), dt.timedelta(minutes=10)))
    schedule = []
    for _ in range(4):  # the endpoint is down: every attempt fails and is put back with a growing wait
        while worker.run_once().claimed:
            pass
        rows = _deliveries(store)
        assert {row.state for row in rows} == {PENDING}
        waits = {row.next_attempt_at - clock.now for row in rows}
        schedule.append(max(waits))
        clock.now = max(row.next_attempt_at for row in rows)
    assert all(row.attempts == 4 and "127.0.0.1" in row.last_error for row in _deliveries(store))
    assert schedule == sorted(schedule) and schedule[-1] <= dt.timedelta(seconds=80)

    receiver = receivers.start(la_identity, port=port)  # the endpoint comes back
    while worker.run_once().claimed:
        pass
    assert {row.state for row in _deliveries(store)} == {ACKNOWLEDGED}
    applied = receiver.receipts.applied()
    assert sorted(a.message_id for a in applied) == sorted(r.message_id for r in records)
    assert {a.receipts for a in applied} == {1}


def test_a_fatal_error_answer_dead_letters_and_tells_the_sender(store, accept, step_to, receivers, la_identity,
                                                                make_worker, clock, caplog, deployment):
    receiver = receivers.start(la_identity)
    directory = _school_directory(receiver.url)
    record, _ = accept(store, step_to(directory, LA))
    with store.transaction() as unit:  # spoil the signature: the receiver can never accept it
        row = unit.session.scalars(select(DeliveryRow)).one()
        tampered = json.loads(row.payload)
        tampered["entry"][2]["resource"]["name"][0]["family"] = "Changed"
        row.payload = json.dumps(tampered)
    with caplog.at_level(logging.ERROR, logger="gateway.delivery.outbox"):
        report = make_worker(store, directory).run_once()
    assert report.dead_lettered == 1
    original, notice = _original_and_notice(store)
    assert original.state == DEAD_LETTERED and "fatal-error" in original.last_error
    assert "signature" in original.last_error
    assert receiver.receipts.applied() == []
    assert (notice.kind, notice.destination, notice.mode, notice.state) == (KIND_NOTICE, SCHOOL, MAILBOX, PENDING)
    assert any("DEAD-LETTERED" in r.getMessage() for r in caplog.records)
    _check_notice(notice, record, deployment)


def test_dead_lettered_after_the_maximum_age_and_the_sender_is_told(store, accept, step_to, make_worker, clock,
                                                                    deployment):
    directory = _school_directory(f"https://127.0.0.1:{free_port()}/")
    record, _ = accept(store, step_to(directory, LA))
    worker = make_worker(store, directory, backoff=Backoff(dt.timedelta(minutes=5), dt.timedelta(hours=6)))
    attempts = 0
    while clock.now < T0 + dt.timedelta(days=6):  # five days of an unreachable endpoint, without sleeping
        report = worker.run_once()
        attempts += report.claimed
        if report.dead_lettered or report.expired:
            break
        (row,) = _deliveries(store)
        clock.now = row.next_attempt_at
    original, notice = _original_and_notice(store)
    assert original.state == DEAD_LETTERED and original.attempts == attempts
    assert original.dead_lettered_at == T0 + dt.timedelta(days=5)
    assert "maximum age" in original.last_error and "last error" in original.last_error
    # Backoff capped at 6 hours: about 20 attempts over 5 days, not thousands.
    assert 15 <= attempts <= 40
    assert notice.kind == KIND_NOTICE and notice.destination == SCHOOL and notice.state == PENDING
    assert notice.message_id == record.message_id
    _check_notice(notice, record, deployment)
    assert not worker.run_once().busy  # a dead letter is not claimed again


def _check_notice(notice: DeliveryRow, record, deployment) -> None:
    bundle = json.loads(notice.payload)
    verify_message(bundle, TrustAnchor.from_files(deployment.ca, deployment.crl), now=notice.created_at)
    original_header = message_header(json.loads(record.signed_message))
    ack = read_acknowledgement(notice.payload.encode(), original_header["id"])
    assert ack.code == "fatal-error"
    assert "NOT delivered to Fictional Borough" in ack.text and LA in ack.text
    assert message_header(bundle)["destination"] == [{"endpoint": SCHOOL}]


def test_a_lapsed_claim_is_taken_over_and_the_late_worker_is_fenced(store, accept, step_to, make_worker, clock):
    directory = _school_directory(f"https://127.0.0.1:{free_port()}/")
    accept(store, step_to(directory, LA))
    lease = dt.timedelta(minutes=5)
    with store.transaction() as unit:
        (first,) = SqlOutbox(unit.session).claim(now=T0, limit=5, worker="A", lease=lease)
    with store.transaction() as unit:  # held: no one else gets it
        assert SqlOutbox(unit.session).claim(now=T0 + lease - dt.timedelta(seconds=1), limit=5, worker="B",
                                             lease=lease) == []
    with store.transaction() as unit:  # A stopped; its lease ran out
        (second,) = SqlOutbox(unit.session).claim(now=T0 + lease, limit=5, worker="B", lease=lease)
    assert second.id == first.id and second.token != first.token and second.attempts == 2
    (row,) = _deliveries(store)
    assert row.state == IN_FLIGHT and row.claimed_by == "B" and "lapsed" in row.last_error
    # A wakes up and reports: its claim no longer holds, so nothing it says is recorded.
    worker = make_worker(store, directory)
    from gateway.delivery.worker import _Outcome

    assert worker._record(first, _Outcome("ack")) is None
    assert worker._record(second, _Outcome("ack")) == "ack"
    assert _deliveries(store)[0].state == ACKNOWLEDGED


def test_lease_must_outlast_the_client_timeout(store, deployment):
    with pytest.raises(ValueError, match="lease"):
        OutboxWorker(store, AgencyClient.for_certs_dir(deployment.dir, timeout=30), lease=dt.timedelta(seconds=10))


def test_an_agency_that_moved_its_endpoint_gets_pending_deliveries_at_the_new_one(
        store, accept, step_to, receivers, la_identity, make_worker):
    directory = _school_directory(f"https://127.0.0.1:{free_port()}/")  # the old address: nothing there
    record, _ = accept(store, step_to(directory, LA))
    receiver = receivers.start(la_identity)
    directory.add(push_agency("la", "999", "Fictional Borough", receiver.url))  # the operator updates the directory
    assert make_worker(store, directory).run_once().acknowledged == 1
    assert [a.message_id for a in receiver.receipts.applied()] == [record.message_id]


def test_housekeeping_runs_with_expiry_and_its_failure_never_stops_delivery(store, accept, step_to, receivers,
                                                                            la_identity, make_worker, clock, caplog):
    receiver = receivers.start(la_identity)
    directory = _school_directory(receiver.url)
    accept(store, step_to(directory, LA))
    calls = []

    def housekeeping(now):
        calls.append(now)
        raise RuntimeError("a fictional housekeeping failure")

    worker = make_worker(store, directory, housekeeping=housekeeping, expire_every=dt.timedelta(seconds=30))
    with caplog.at_level(logging.ERROR, logger="gateway.delivery.worker"):
        report = worker.run_once()
    assert report.acknowledged == 1                      # delivered although housekeeping failed
    assert calls == [T0] and "housekeeping failed" in caplog.text
    worker.run_once()
    assert calls == [T0]                                 # not again before expire_every has passed
    clock.advance(seconds=31)
    worker.run_once()
    assert calls == [T0, T0 + dt.timedelta(seconds=31)]


# Slow and hung endpoints, leases ------------------------------------------------------------------

def _turn_until(worker, predicate, *, turns: int = 2000) -> None:
    """Turn ``worker`` (recording each delivery as it ends) until ``predicate()``; fail after ``turns``."""
    for _ in range(turns):
        worker.step()
        if predicate():
            return
        worker.wait(0.5)
    raise AssertionError("the worker never got there")


def test_a_hung_endpoint_holds_only_its_cap_of_slots_and_others_are_delivered_meanwhile(
        store, accept, step_to, receivers, la_identity, make_worker, deployment):
    healthy = receivers.start(la_identity)
    hung = receivers.hang(la_identity)  # accepts TCP connections, never answers
    directory = StaticDirectory(push_agency("la", "999", "Fictional Borough", healthy.url),
                                push_agency("la", "998", "Fictional Shire", hung.url),
                                mailbox_agency("school", "999101", "Fictional Primary School"))
    to_hung = [accept(store, step_to(directory, LA2))[0] for _ in range(4)]
    to_healthy = [accept(store, step_to(directory, LA))[0] for _ in range(6)]
    worker = make_worker(store, directory, concurrency=4, per_destination=2,
                         backoff=Backoff(dt.timedelta(minutes=1), dt.timedelta(minutes=10)))
    worker.client.connect_timeout = 2.0  # the hung endpoint's attempts end here

    def hung_in_flight() -> int:
        return sum(claim.destination == LA2 for claim in worker.in_flight)

    seen_hung = []

    def healthy_done() -> bool:
        seen_hung.append(hung_in_flight())
        return [row.state for row in _deliveries(store) if row.destination == LA] == [ACKNOWLEDGED] * len(to_healthy)

    _turn_until(worker, healthy_done)
    # Every healthy delivery went through while the hung endpoint held its two slots, and no more.
    assert max(seen_hung) == 2 and hung_in_flight() == 2
    rows = {row.payload_message_id: row for row in _deliveries(store)}
    assert sorted(a.message_id for a in healthy.receipts.applied()) == sorted(r.message_id for r in to_healthy)
    assert sorted(rows[r.message_id].state for r in to_hung) == [IN_FLIGHT, IN_FLIGHT, PENDING, PENDING]

    # The hung attempts time out and go back with backoff; the other two then get their turn (and time out).
    _turn_until(worker, lambda: all(rows.attempts == 1 and rows.state == PENDING
                                    for rows in _deliveries(store) if rows.destination == LA2)
                and not worker.in_flight)
    hung_rows = [row for row in _deliveries(store) if row.destination == LA2]
    assert all("timed out" in row.last_error and row.next_attempt_at > T0 for row in hung_rows)
    assert hung.receipts.applied() == []


def test_a_live_worker_renews_its_claims_and_keeps_them_past_the_first_lease(
        store, accept, step_to, receivers, la_identity, make_worker, clock, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()  # the receiver applies the message, then holds its answer: a slow endpoint
    receiver = receivers.start(la_identity, hold_file=hold)
    directory = _school_directory(receiver.url)
    accept(store, step_to(directory, LA))
    lease = dt.timedelta(seconds=30)
    worker = make_worker(store, directory, lease=lease)  # heartbeat: every 10 s of its clock
    assert worker.step().claimed == 1
    (row,) = _deliveries(store)
    assert row.lease_until == T0 + lease
    clock.advance(seconds=20)
    worker.step()  # a heartbeat: the delivery is still in flight
    (row,) = _deliveries(store)
    assert row.state == IN_FLIGHT and row.lease_until == T0 + dt.timedelta(seconds=20) + lease
    with store.transaction() as unit:  # past the first lease, another worker still finds nothing to claim
        assert SqlOutbox(unit.session).claim(now=T0 + lease + dt.timedelta(seconds=5), limit=5, worker="B",
                                             lease=lease) == []
    hold.unlink()
    _turn_until(worker, lambda: _deliveries(store)[0].state == ACKNOWLEDGED)
    assert _deliveries(store)[0].attempts == 1 and receiver.receipts.raw_counts() != {}
    assert set(receiver.receipts.raw_counts().values()) == {1}  # delivered once: never claimed twice


def test_the_per_destination_cap_counts_the_workers_own_deliveries_in_flight(store, accept, step_to):
    directory = StaticDirectory(push_agency("la", "999", "Fictional Borough", "https://127.0.0.1:9/"),
                                push_agency("la", "998", "Fictional Shire", "https://127.0.0.1:9/"),
                                mailbox_agency("school", "999101", "Fictional Primary School"))
    for _ in range(6):
        accept(store, step_to(directory, LA))
    accept(store, step_to(directory, LA2))
    lease = dt.timedelta(minutes=1)

    def claim(worker: str, in_flight: dict[str, int]) -> list[str]:
        with store.transaction() as unit:
            return sorted(c.destination for c in SqlOutbox(unit.session).claim(
                now=T0, limit=5, worker=worker, lease=lease, per_destination=2, in_flight=in_flight))

    assert claim("A", {}) == [LA2, LA, LA]
    assert claim("A", {LA: 2, LA2: 1}) == []   # A's own two for LA fill its share; LA2 has nothing left
    assert claim("A", {LA: 1}) == [LA]         # one of A's ended: room for one more
    # Another worker has a share of its own: a worker killed holding its share blocks no one.
    assert claim("B", {}) == [LA, LA]


def test_nothing_is_due_for_a_worker_when_every_due_delivery_waits_for_a_full_destination(store, accept, step_to):
    from gateway.delivery.services import any_due
    from gateway.store.engine import read_only

    directory = _school_directory("https://127.0.0.1:9/")
    for _ in range(3):
        accept(store, step_to(directory, LA))
    with read_only(store.engine) as connection:
        assert any_due(connection, T0)                    # three are due...
        assert not any_due(connection, T0, full=[LA])     # ...but the worker has no room for their destination
        assert any_due(connection, T0, full=[LA2])


def test_one_destinations_backlog_does_not_keep_the_others_from_being_claimed(store, accept, step_to):
    directory = StaticDirectory(push_agency("la", "999", "Fictional Borough", "https://127.0.0.1:9/"),
                                push_agency("la", "998", "Fictional Shire", "https://127.0.0.1:9/"),
                                mailbox_agency("school", "999101", "Fictional Primary School"))
    for n in range(25):  # a hung endpoint's backlog, older than anything else that is due
        accept(store, step_to(directory, LA2), now=T0 + dt.timedelta(seconds=n))
    for n in range(3):
        accept(store, step_to(directory, LA), now=T0 + dt.timedelta(minutes=1, seconds=n))
    with store.transaction() as unit:
        claims = SqlOutbox(unit.session).claim(now=T0 + dt.timedelta(minutes=2), limit=5, worker="A",
                                               lease=dt.timedelta(minutes=1), per_destination=2)
    assert sorted(c.destination for c in claims) == [LA2, LA2, LA, LA]
