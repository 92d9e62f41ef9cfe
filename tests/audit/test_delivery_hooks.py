"""Delivery attempts, dead letters and the worker's checkpoints, with real receiving endpoints, on both engines."""

from __future__ import annotations

import datetime as dt
import json
import random

from sqlalchemy import select

from gateway.audit.chain import stored_records
from gateway.audit.checkpoints import checkpoints
from gateway.config import Settings
from gateway.delivery.cli import _deadlines
from gateway.delivery.models import DeliveryRow
from gateway.delivery.worker import OutboxWorker
from gateway.transport.client import AgencyClient
from tests.shared_delivery import LA, T0, StaticDirectory, mailbox_agency, push_agency


def _records(store, subtype):
    with store.engine.connect() as connection:
        return [r for r in stored_records(connection) if r.subtype == subtype]


def _worker(store, deployment, gateway_signer, directory, **options):
    return OutboxWorker(store, AgencyClient.for_certs_dir(deployment.dir, timeout=10), signer=lambda: gateway_signer,
                        directory=directory, rng=random.Random(5), clock=lambda: T0, **options)


def _directory(endpoint: str) -> StaticDirectory:
    return StaticDirectory(push_agency("la", "999", "Fictional Borough", endpoint),
                           mailbox_agency("school", "999101", "Fictional Primary School"))


def test_an_acknowledged_attempt_and_a_dead_letter_are_audited(store, accept, step_to, receivers,
                                                               la_identity, deployment, gateway_signer):
    directory = _directory(receivers.start(la_identity).url)
    good, _ = accept(store, step_to(directory, LA))
    bad, _ = accept(store, step_to(directory, LA))
    with store.transaction() as unit:  # spoil one signature: the receiver answers fatal-error
        row = unit.session.scalars(select(DeliveryRow).where(DeliveryRow.message_id == bad.message_id)).one()
        tampered = json.loads(row.payload)
        tampered["entry"][2]["resource"]["name"][0]["family"] = "Changed"
        row.payload = json.dumps(tampered)
    worker = _worker(store, deployment, gateway_signer, directory)
    try:
        while worker.run_once().claimed:
            pass
    finally:
        worker.close()
    attempts = _records(store, "delivery-attempt")
    by_message = {}
    for record in attempts:
        by_message.setdefault(dict(map(tuple, record.entities))["message"], []).append(record)
    (ok,) = by_message[good.message_id]
    assert (ok.outcome, ok.detail, ok.agent) == ("success", {"attempt": 1, "result": "ack"}, "gateway")
    assert ["agency", LA] in ok.entities
    dead_attempt, dead_letter = by_message[bad.message_id]
    assert (dead_attempt.outcome, dead_attempt.detail["result"]) == ("failure", "dead")
    assert (dead_letter.outcome, dead_letter.detail) == ("serious-failure", {"result": "dead-lettered",
                                                                            "attempts": 1})
    routed = _records(store, "routing")
    assert [dict(map(tuple, r.entities))["message"] for r in routed] == [good.message_id, bad.message_id]


def test_the_worker_s_housekeeping_signs_a_checkpoint_every_setting_s_minutes(store, accept, step_to,
                                                                             gateway_signer):
    accept(store, step_to(StaticDirectory(mailbox_agency("la", "999", "Fictional Borough")), LA))
    housekeeping = _deadlines(Settings(audit_checkpoint_minutes=15), store, lambda: gateway_signer)
    housekeeping(T0)
    housekeeping(T0 + dt.timedelta(minutes=10))  # not due yet
    accept(store, step_to(StaticDirectory(mailbox_agency("la", "999", "Fictional Borough")), LA))
    housekeeping(T0 + dt.timedelta(minutes=15))
    with store.engine.connect() as connection:
        made = checkpoints(connection)
    assert [(c.seq, c.signed_at) for c in made] == [(1, T0), (2, T0 + dt.timedelta(minutes=15))]
