"""The outbox accept step: a message and all its deliveries commit together, or nothing does."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from sqlalchemy import func, select

from gateway.delivery.models import MAILBOX, PENDING, PUSH, DeliveryRow, UnroutableRow
from gateway.delivery.outbox import outbox_step, split_result
from gateway.delivery.services import SqlOutbox
from gateway.routing import PlannedDelivery, Unroutable
from gateway.signing import TrustAnchor, verify_message
from gateway.store.models import AcceptedMessageRow

from tests.shared_delivery import GATEWAY, LA, LA2, SCHOOL, T0, StaticDirectory, mailbox_agency, push_agency, to


@pytest.fixture
def directory():
    return StaticDirectory(mailbox_agency("la", "999", "Fictional Borough"),
                           push_agency("la", "998", "Fictional County", "https://127.0.0.1:1/"),
                           mailbox_agency("school", "999101", "Fictional Primary School"))


def _count(store, model) -> int:
    with store.transaction() as unit:
        return unit.session.scalar(select(func.count()).select_from(model))


def test_enqueues_every_destination_in_the_accepting_transaction(store, accept, step_to, directory):
    due = T0 + dt.timedelta(hours=23, minutes=30)
    record, signed = accept(store, step_to(directory, LA, LA2, due=due))
    with store.transaction() as unit:
        deliveries = SqlOutbox(unit.session).deliveries_of(record.message_id)
        payloads = {row.destination: row.payload for row in unit.session.scalars(select(DeliveryRow))}
    assert {(d.destination, d.mode, d.endpoint, d.state, d.attempts) for d in deliveries} == {
        (LA, MAILBOX, None, PENDING, 0), (LA2, PUSH, "https://127.0.0.1:1/", PENDING, 0)}
    for d in deliveries:
        assert d.created_at == d.updated_at == d.next_attempt_at == T0
        assert d.due_at == due and d.expires_at == T0 + dt.timedelta(days=5)
        assert d.payload_message_id == record.message_id and d.rule == "test-rule"
    # The signed Bundle is delivered exactly as the gateway signed it.
    assert json.loads(payloads[LA]) == signed


def test_a_failing_later_step_rolls_back_the_message_and_its_deliveries(store, accept, step_to, directory):
    def refuse(unit, record, bundle):
        raise RuntimeError("a later step fails")

    def both(unit, record, bundle):
        step_to(directory, LA)(unit, record, bundle)
        assert SqlOutbox(unit.session).has_delivery(LA, record.message_id)  # enqueued, not yet committed
        refuse(unit, record, bundle)

    with pytest.raises(RuntimeError):
        accept(store, both)
    assert _count(store, AcceptedMessageRow) == _count(store, DeliveryRow) == 0


def test_unknown_destination_is_held_as_unroutable_with_an_alert(store, accept, step_to, directory, caplog):
    stranger = "urn:x-safeguarding:agency:la:997"
    with caplog.at_level(logging.ERROR, logger="gateway.delivery.outbox"):
        record, _ = accept(store, step_to(directory, LA, stranger))
    with store.transaction() as unit:
        outbox = SqlOutbox(unit.session)
        assert [d.destination for d in outbox.deliveries_of(record.message_id)] == [LA]
        (entry,) = outbox.unroutable()
    assert entry.message_id == record.message_id and entry.sender_agency == SCHOOL and not entry.resolved
    assert stranger in entry.reason and entry.rule == "test-rule"
    (alert,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "UNROUTABLE" in alert.getMessage() and record.message_id in alert.getMessage()


def test_routing_that_finds_nobody_or_fails_holds_the_message(store, accept, directory, caplog):
    def nobody(bundle, now, lookup):
        return Unroutable("urn:uuid:x", "no-routing-rule", "no routing rule for event 'x'")

    def broken(bundle, now, lookup):
        raise KeyError("home postcode")

    with caplog.at_level(logging.ERROR):
        first, _ = accept(store, outbox_step(nobody, directory))
        second, _ = accept(store, outbox_step(broken, directory))
    with store.transaction() as unit:
        entries = {e.message_id: e for e in SqlOutbox(unit.session).unroutable()}
    assert entries[first.message_id].rule == "no-routing-rule"
    assert entries[first.message_id].reason == "no routing rule for event 'x'"
    assert entries[second.message_id].reason == "routing failed: KeyError: 'home postcode'"
    assert _count(store, AcceptedMessageRow) == 2 and _count(store, DeliveryRow) == 0


def test_a_message_routed_to_nobody_on_purpose_is_kept_without_deliveries(store, accept, directory):
    accept(store, outbox_step(lambda bundle, now, lookup: [], directory))
    assert _count(store, AcceptedMessageRow) == 1
    assert _count(store, DeliveryRow) == _count(store, UnroutableRow) == 0


def test_a_message_routing_builds_is_signed_by_the_gateway(store, accept, directory, gateway_signer, deployment):
    def encompass(bundle, now, lookup):
        built = {"resourceType": "Bundle", "id": "b0000000-0000-4000-8000-000000000001",
                 "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:b0000000-0000-4000-8000-000000000001"},
                 "type": "message", "timestamp": "2025-03-03T09:00:00Z",
                 "entry": [{"fullUrl": "urn:uuid:h1", "resource": {
                     "resourceType": "MessageHeader", "id": "h1",
                     "eventCoding": {"system": "urn:test", "code": "operation-encompass"},
                     "source": {"endpoint": GATEWAY}, "destination": [{"endpoint": SCHOOL}]}}]}
        return [PlannedDelivery(SCHOOL, built, "operation-encompass-to-school", "child's school", None)]

    accept(store, outbox_step(encompass, directory, signer=lambda: gateway_signer))
    with store.transaction() as unit:
        (row,) = unit.session.scalars(select(DeliveryRow))
        payload = json.loads(row.payload)
    assert row.payload_message_id == "urn:uuid:b0000000-0000-4000-8000-000000000001"
    assert row.payload_header_id == "h1"
    verified = verify_message(payload, TrustAnchor.from_files(deployment.ca, deployment.crl), now=T0)
    assert verified.signature.agency == GATEWAY


def test_the_same_message_planned_twice_to_one_agency_is_delivered_once(store, accept, step_to, directory):
    accept(store, step_to(directory, LA, LA))
    assert _count(store, DeliveryRow) == 1


def test_split_result_reads_routing_results():
    planned = PlannedDelivery(LA, {}, "r", "why")
    held = Unroutable(None, "r", "why not")
    assert split_result([planned, held]) == ([planned], [held])
    assert split_result(held) == ([], [held])
    assert split_result([]) == ([], [])
    with pytest.raises(TypeError):
        split_result([object()])
    with pytest.raises(TypeError):
        split_result(None)


def test_to_helper_plans_the_message_as_it_is():
    assert to(LA)({"a": 1}, T0, None) == [PlannedDelivery(LA, {"a": 1}, "test-rule", "sent by the test", None)]
