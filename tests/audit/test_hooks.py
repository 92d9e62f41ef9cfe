"""Every audited action, done through the real app on both engines, leaves its audit record (ids and codes only).

Family A's story (tests/shared_console.py's ``console`` fixture: the real app, its intake, routing, linking and console)
is the set-up: translations, submissions, validations, routing decisions, reads, a decision, an
acknowledgement, a refusal; the person index's decisions and the directory's changes are made directly.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from sqlalchemy import select

from gateway.audit.chain import stored_records
from gateway.delivery.models import DeliveryRow
from gateway.model import systems as S
from gateway.routing import Agency, Directory
from gateway.store.models import AcceptedMessageRow
from gateway.transport.middleware import AGENCY_KEY
from tests.shared_console import DORSET, HAMPSHIRE, SCHOOL


def _records(store, subtype: str | None = None) -> list:
    with store.engine.connect() as connection:
        return [r for r in stored_records(connection) if subtype is None or r.subtype == subtype]


def _messages(console) -> set[str]:
    return {row.message_id for row in console.rows(AcceptedMessageRow.__table__)}


def test_the_story_s_translations_submissions_validations_and_routing_are_audited(console, verify_now):
    console.family_a()
    accepted = _messages(console)
    translations = _records(console.store, "translation")
    assert [(r.agent, r.outcome, r.detail["format"]) for r in translations] == [
        (DORSET, "success", "ppn-xml"), (SCHOOL, "success", "schoolsafe-csv"), (SCHOOL, "success", "schoolsafe-csv")]
    assert all(r.detail["accepted"] >= 1 and r.entities == [] for r in translations)
    submitted = _records(console.store, "submission")
    assert {r.entities[0][1] for r in submitted} == accepted - {m for r in _records(console.store, "decision")
                                                                for _, m in r.entities}
    assert all(r.action == "C" and r.agent in (DORSET, SCHOOL) and r.entities[0][0] == "message" for r in submitted)
    validated = _records(console.store, "validation")
    assert {r.entities[0][1] for r in validated} == accepted and all(r.detail["errors"] == 0 for r in validated)
    routed = {r.entities[0][1]: r for r in _records(console.store, "routing")}
    assert set(routed) == accepted
    deliveries = console.rows(DeliveryRow.__table__)
    for message in accepted:  # each routing record names every agency routing sent the message to, and its rules
        rules = set(routed[message].detail["rules"])
        assert {a for k, a in routed[message].entities if k == "agency"} == {
            d.destination for d in deliveries if d.message_id == message and d.rule in rules}
    assert any(r.detail["rules"] for r in routed.values())
    report = verify_now(console.store.engine)
    assert report.ok, report.problems


def test_no_personal_data_goes_into_the_audit_log(console):
    console.family_a()
    text = json.dumps([r.__dict__ for r in _records(console.store)], default=str)
    for personal in ("Leo", "Parker", "9990000018", "SP10 1AA", "2015-11-02", "hungry"):
        assert personal not in text


def test_a_refusal_is_audited_in_a_transaction_of_its_own(console):
    console.family_a()
    before = _messages(console)
    answer = console.client.post("/fhir/$process-message", data=b"{not json",
                                 headers={"Content-Type": "application/fhir+json"},
                                 environ_base={AGENCY_KEY: SCHOOL})
    assert answer.status_code == 400
    (refusal,) = _records(console.store, "refusal")
    assert (refusal.agent, refusal.outcome, refusal.detail) == (SCHOOL, "failure", {"code": "invalid", "status": 400})
    assert _messages(console) == before  # nothing of the message was kept


def test_a_refused_message_with_an_id_is_named(console, make_message):
    console.family_a()
    bundle = make_message(SCHOOL, sender_code="999102")  # says it is from another school
    answer = console.client.post("/fhir/$process-message", data=json.dumps(bundle).encode(),
                                 headers={"Content-Type": "application/fhir+json"}, environ_base={AGENCY_KEY: SCHOOL})
    assert answer.status_code == 403
    (refusal,) = _records(console.store, "refusal")
    assert refusal.entities == [["message", bundle["identifier"]["value"]]] and refusal.detail["status"] == 403


def test_reads_of_personal_data_are_audited_with_the_console_s_record(console):
    console.family_a()
    (referral,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    assert console.get(f"/la/messages/{referral.message_id}", HAMPSHIRE).status_code == 200
    reads = _records(console.store, "read")
    shown = console.reads()
    assert len(reads) == len(shown) and reads
    assert [(r.agent, r.detail["what"]) for r in reads] == [(row.agency, row.what) for row in shown]
    assert ["message", referral.message_id] in [e for r in reads for e in r.entities]
    assert all(r.action == "R" for r in reads)


def test_the_decision_on_a_referral_is_audited(console):
    console.family_a()
    (referral,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    answer = console.post(f"/la/messages/{referral.message_id}/decision", HAMPSHIRE,
                          {"decision": "accepted-for-assessment", "reason": "A social worker will visit."})
    assert answer.status_code == 303
    (decision,) = _records(console.store, "decision")
    assert decision.agent == HAMPSHIRE and decision.detail == {"kind": S.EVENT_OUTCOME}
    (outcome,) = _messages(console) - {r.entities[0][1] for r in _records(console.store, "submission")}
    assert decision.entities == [["message", outcome]]


def test_an_acknowledgement_is_audited(console):
    console.family_a()
    (notification, *_) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.destination == SCHOOL,
                                      DeliveryRow.__table__.c.mode == "mailbox")
    assert console.post(f"/school/notifications/{notification.id}/acknowledge", SCHOOL, {}).status_code == 303
    (ack,) = _records(console.store, "acknowledgement")
    assert (ack.agent, ack.action) == (SCHOOL, "U")
    assert ack.entities == [["delivery", notification.id], ["message", notification.payload_message_id]]


def test_directory_changes_are_audited(console, verify_now):
    seeded = _records(console.store, "configuration")  # the fixture loaded the seed directory
    assert seeded and {r.detail["change"] for r in seeded} >= {"agency", "school", "district"}
    directory = Directory(console.store.engine)
    directory.add_agency(Agency(kind="school", code="999177", name="Fictional new school", delivery="mailbox"))
    directory.import_postcodes(io.StringIO("postcode,la_code\nSP11 1AA,850\n"), source="test.csv",
                               now=dt.datetime.now(dt.timezone.utc))
    *_, agency, imported = _records(console.store, "configuration")
    assert agency.entities == [["agency", S.agency_uri("school", "999177")]] and agency.agent == "operator"
    assert imported.detail == {"change": "postcode-import", "imported": 1, "rejected": 0, "skipped": 0}
    assert verify_now(console.store.engine).ok


def test_export_writes_valid_fhir_audit_events_for_every_kind_of_record(console, tmp_path, runner):
    from gateway.audit.export import audit_event
    from gateway.cli import main
    from gateway.model.fhir import validate_resource

    console.family_a()
    (referral,) = console.rows(DeliveryRow.__table__, DeliveryRow.__table__.c.rule == "school-referral-to-home-la")
    console.get(f"/la/messages/{referral.message_id}", HAMPSHIRE)
    records = _records(console.store)
    one_of_each = {r.subtype: r for r in records}
    assert set(one_of_each) >= {"translation", "submission", "validation", "routing", "read", "configuration"}
    for record in one_of_each.values():
        event = validate_resource(audit_event(record))  # fhir.resources, the reference
        assert event.action == record.action and event.agent[0].requestor is True
        assert event.source.observer.display == "Safeguarding gateway"
    out = tmp_path / "audit.ndjson"
    result = runner.invoke(main, ["audit", "export", "--database", str(console.store.engine.url.render_as_string(
        hide_password=False)), "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(records)
    assert [json.loads(line)["id"] for line in lines] == [f"audit-{r.seq}" for r in records]
    later = records[-1].recorded_at.isoformat()
    result = runner.invoke(main, ["audit", "export", "--database", str(console.store.engine.url.render_as_string(
        hide_password=False)), "--since", later])
    assert result.exit_code == 0
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [
        f"audit-{r.seq}" for r in records if r.recorded_at >= records[-1].recorded_at]
    refused = runner.invoke(main, ["audit", "export", "--since", "yesterday"])
    assert refused.exit_code == 2 and "ISO 8601" in refused.output
