"""The retention purge on both engines, over messages accepted through the real accept path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from gateway.audit.models import AuditEventRow
from gateway.audit.export import audit_events
from gateway.audit.verify import verify
from gateway.delivery.models import DeliveryRow
from gateway.linkage.models import PersonalDataReadRow, PersonRow
from gateway.model.fhir import validate_resource
from gateway.retention.holds import place_hold, place_household_holds, release_hold
from gateway.retention.purge import Purge, _referencing
from gateway.store.engine import read_only
from gateway.store.models import AcceptedMessageRow, MessagePersonRow
from gateway.store.schema import metadata

from tests.retention.conftest import NOW, OLD, RECENT, RETENTION_DAYS, Person

ALEX = Person("Alex", "Oldcase", "2010-01-02", 101)
BEA = Person("Bea", "Stillactive", "2011-02-03", 102)
CAL = Person("Cal", "Newcase", "2012-03-04", 103)
SAM = Person("Sam", "Oldcase", "2013-04-05", 104)        # Alex's sibling
MUM = Person("Morgan", "Parent", "1985-05-06", 105)      # a mother of two children
DEE = Person("Dee", "Parent", "2014-06-07", 106)
ELI = Person("Eli", "Parent", "2015-07-08", 107)
_MESSAGE = AcceptedMessageRow.__table__
_MP = MessagePersonRow.__table__


def rows_about(gateway, message_id: str) -> dict[str, int]:
    """Rows in every table that refers to the message or to its people's records (found from the models' keys)."""
    with read_only(gateway.store.engine) as connection:
        records = list(connection.execute(select(_MP.c.id).where(_MP.c.message_id == message_id)).scalars())
    found = {"accepted_message": gateway.count(_MESSAGE, _MESSAGE.c.message_id == message_id)}
    for parent, keys in ((_MESSAGE, [message_id]), (_MP, records)):
        for child, pairs in _referencing(parent):
            for child_column, _ in pairs:
                if keys:
                    name = f"{child.name}.{child_column.name}"
                    found[name] = found.get(name, 0) + gateway.count(child, child_column.in_(keys))
    return found


def purge_audits(gateway) -> list[dict]:
    with read_only(gateway.store.engine) as connection:
        return [{"entities": json.loads(row.entities), "detail": json.loads(row.detail), "action": row.action}
                for row in connection.execute(select(AuditEventRow).where(AuditEventRow.subtype == "purge")
                                              .order_by(AuditEventRow.seq))]


def test_old_messages_go_from_every_table_recent_ones_stay_and_the_counts_add_up(gateway):
    old = gateway.send(ALEX, OLD)
    still = gateway.send(BEA, OLD)
    gateway.send(BEA, RECENT)           # Bea's chronology is active: her old message stays with it
    new = gateway.send(CAL, RECENT)
    gateway.acknowledge_all()
    alex = gateway.person_of(ALEX)
    before = rows_about(gateway, old)
    assert before["accepted_message"] == 1 and before["message_person.message_id"] == 1
    assert before["delivery.message_id"] >= 1 and before["message_event.message_id"] == 1
    assert before["person_link_key.record_id"] >= 1 and before["person_link_decision.record_id"] == 1

    report = gateway.purge()

    assert (report.total, report.purged, report.active, report.recent, report.held, report.pending) == (4, 1, 1, 2, 0,
                                                                                                         0)
    assert report.adds_up and report.purged + report.kept + report.held == report.total
    assert report.purged_messages == [old]
    assert all(count == 0 for count in rows_about(gateway, old).values()), rows_about(gateway, old)
    for kept in (still, new):
        assert gateway.count(_MESSAGE, _MESSAGE.c.message_id == kept) == 1
    # Alex had nothing else: the person goes too; Bea and Cal stay.
    assert gateway.count(PersonRow.__table__, PersonRow.__table__.c.id == alex) == 0
    assert report.people_removed == 1
    assert set(gateway.person_ids().values()) == {BEA.nhs, CAL.nhs}
    # What the report counts is what went: a row per table, as the audit record says.
    assert report.rows["accepted_message"] == 1 and report.rows["person"] == 1
    assert set(report.rows) >= {"accepted_message", "delivery", "message_person", "person_link_key",
                                "person_link_decision", "message_event", "deadline", "person"}
    audits = purge_audits(gateway)
    assert [a["entities"][0] for a in audits] == [["message", old], ["person", alex]]
    assert ["person", alex] in audits[0]["entities"]
    assert audits[0]["action"] == "D" and audits[0]["detail"]["rows"]["accepted_message"] == 1
    assert audits[0]["detail"]["retention_days"] == RETENTION_DAYS
    assert sum(a["detail"]["rows"].get("delivery", 0) for a in audits) == before["delivery.message_id"]
    # The audit log is never purged: its chain is whole. Its purge records export as valid FHIR AuditEvents.
    with read_only(gateway.store.engine) as connection:
        assert verify(connection, None, now=NOW).ok
        exported = [e for e in audit_events(connection) if e["subtype"][-1]["code"] == "purge"]
    assert len(exported) == 2
    for event in exported:
        validate_resource(event)
        assert event["action"] == "D"


def test_a_second_run_finds_nothing_more(gateway):
    gateway.send(ALEX, OLD)
    gateway.acknowledge_all()
    assert gateway.purge().purged == 1
    again = gateway.purge()
    assert (again.total, again.purged, again.people_removed) == (0, 0, 0) and again.adds_up


def test_a_held_child_keeps_their_messages_until_the_hold_is_released(gateway):
    first, second = gateway.send(ALEX, OLD), gateway.send(ALEX, OLD + dt.timedelta(days=2))
    gateway.send(CAL, OLD)
    gateway.acknowledge_all()
    alex = gateway.person_of(ALEX)
    with gateway.store.transaction() as unit:
        place_hold(unit.session, alex, reason="Inquiry ref FIC-1", by="R. Manager", now=NOW)

    held = gateway.purge()
    assert (held.total, held.purged, held.held) == (3, 1, 2) and held.adds_up
    assert gateway.count(_MESSAGE, _MESSAGE.c.message_id.in_([first, second])) == 2
    assert gateway.count(PersonRow.__table__, PersonRow.__table__.c.id == alex) == 1

    with gateway.store.transaction() as unit:
        release_hold(unit.session, alex, reason="Inquiry closed", by="R. Manager", now=NOW)
    released = gateway.purge()
    assert (released.total, released.purged, released.held) == (2, 2, 0) and released.adds_up
    assert gateway.count(PersonRow.__table__, PersonRow.__table__.c.id == alex) == 0


def test_a_message_naming_a_held_child_only_as_a_sibling_is_kept(gateway):
    """A hold covers every message that names the person, in any role: here Sam is only Alex's sibling."""
    about_alex = gateway.send(ALEX, OLD, related=((SAM, "SIB"),))
    gateway.acknowledge_all()
    sam, alex = gateway.person_of(SAM), gateway.person_of(ALEX)
    with gateway.store.transaction() as unit:
        place_hold(unit.session, sam, reason="Civil claim ref FIC-2", by="R. Manager", now=NOW)
    report = gateway.purge()
    assert (report.purged, report.held) == (0, 1)
    assert gateway.count(_MESSAGE, _MESSAGE.c.message_id == about_alex) == 1
    assert gateway.count(PersonRow.__table__, PersonRow.__table__.c.id == alex) == 1


def test_a_hold_does_not_spread_to_a_household_unless_asked(gateway):
    """Dee and Eli share a mother; messages about Eli do not name Dee. A hold on Dee keeps Eli's message only when
    it was placed on the household."""
    about_dee = gateway.send(DEE, OLD, related=((MUM, "MTH"),))
    about_eli = gateway.send(ELI, OLD + dt.timedelta(days=1), related=((MUM, "MTH"),))
    gateway.acknowledge_all()
    dee, mum, eli = gateway.person_of(DEE), gateway.person_of(MUM), gateway.person_of(ELI)

    with gateway.store.transaction() as unit:
        place_hold(unit.session, dee, reason="Inquiry ref FIC-3", by="R. Manager", now=NOW)
    dry = gateway.purge(dry_run=True)
    assert dry.purged_messages == [about_eli] and dry.held == 1   # Mum is not held: Eli's message would go

    with gateway.store.transaction() as unit:
        placed, already = place_household_holds(unit.session, dee, reason="Inquiry ref FIC-3",
                                                by="R. Manager", now=NOW)
    assert already == [dee]
    assert {h.person_id for h in placed} == {mum, eli}
    report = gateway.purge()
    assert (report.purged, report.held) == (0, 2)
    assert gateway.count(_MESSAGE, _MESSAGE.c.message_id.in_([about_dee, about_eli])) == 2


def test_a_message_with_a_delivery_still_open_is_kept_and_reported(gateway):
    waiting = gateway.send(ALEX, OLD)
    done = gateway.send(CAL, OLD)
    gateway.acknowledge_all()
    with gateway.store.transaction() as unit:
        opened = unit.session.execute(update(DeliveryRow).where(DeliveryRow.message_id == waiting).values(
            state="pending", acknowledged_at=None).returning(DeliveryRow.id)).scalars().all()
    report = gateway.purge()
    assert (report.purged, report.pending, report.held) == (1, 1, 0) and report.adds_up
    assert report.purged_messages == [done]
    assert {(mid, ident) for mid, ident, _ in report.pending_deliveries} == {(waiting, d) for d in opened}
    assert gateway.count(DeliveryRow.__table__, DeliveryRow.__table__.c.message_id == waiting) >= 1


def test_a_dry_run_counts_what_the_run_then_purges_and_changes_nothing(gateway):
    gateway.send(ALEX, OLD, related=((SAM, "SIB"),))
    gateway.send(BEA, OLD)
    gateway.send(BEA, RECENT)
    gateway.acknowledge_all()
    alex = gateway.person_of(ALEX)
    with gateway.store.transaction() as unit:
        unit.session.execute(PersonalDataReadRow.__table__.insert(), {
            "agency": "urn:x-safeguarding:agency:la:850", "what": "chronology", "subject": alex, "read_at": OLD})
    before = {table.name: gateway.count(table) for table in metadata.sorted_tables}

    dry = gateway.purge(dry_run=True)
    assert {table.name: gateway.count(table) for table in metadata.sorted_tables} == before
    real = gateway.purge()
    assert (dry.total, dry.purged, dry.active, dry.recent, dry.held) == (real.total, real.purged, real.active,
                                                                          real.recent, real.held)
    assert dry.purged_messages == real.purged_messages
    assert dry.rows == real.rows and dry.people_removed == real.people_removed == 2
    assert real.rows["personal_data_read"] == 1
    assert len(purge_audits(gateway)) == real.purged + real.people_removed


def test_people_known_only_from_an_initial_load_go_after_the_period(gateway):
    """An agency's initial load (no message) is personal data too: its people go once nothing was decided about
    them within the period, with an audit record each."""
    from gateway.linkage.index import PersonIndex
    from gateway.linkage.matching import MatchModel, normalise

    loaded_at = NOW - dt.timedelta(days=2 * 365)
    with gateway.store.transaction() as unit:
        index = PersonIndex(unit.session.connection(), MatchModel.load())
        for n, (family, when) in enumerate((("Loadedlongago", loaded_at), ("Loadedlately", RECENT))):
            record = normalise(given=f"Kim{n}", family=family, birth_date=f"201{n}-0{n + 1}-1{n}",
                               nhs_number=None, upn=None, postcode=None, sex=None, school_urn=None)
            index.add({"message_id": None, "source": "import", "source_record": f"row-{n}", "record_id": None,
                       "resource": "import", "role": "child", **dataclasses.asdict(record), "postcode_district": None},
                      record, kind="child", now=when)
    report = gateway.purge()
    assert (report.people_removed, report.people_recent) == (1, 1)
    assert gateway.count(_MP) == 1
    assert [a["entities"] for a in purge_audits(gateway)][0][0][0] == "person"


def test_people_merged_into_one_lead_to_it_and_go_with_it(gateway):
    """Kim0 merged into Kim1, then Kim1 into Kim2: both lead to Kim2 in one step, each keeping when it was
    merged. Past the period all three go (the emptied two and the one kept; one named in the link history of a
    record purged later in the run goes in the next run, as any person so named)."""
    from gateway.linkage.index import PersonIndex
    from gateway.linkage.matching import MatchModel, normalise

    loaded_at = NOW - dt.timedelta(days=2 * 365)
    people = PersonRow.__table__
    with gateway.store.transaction() as unit:
        index = PersonIndex(unit.session.connection(), MatchModel.load())
        ids = []
        for n in range(3):
            record = normalise(given=f"Kim{n}", family="Mergedlongago", birth_date=f"201{n}-01-1{n}",
                               nhs_number=None, upn=None, postcode=None, sex=None, school_urn=None)
            ids.append(index.add({"message_id": None, "source": "import", "source_record": f"row-{n}",
                                  "record_id": None, "resource": "import", "role": "child",
                                  **dataclasses.asdict(record), "postcode_district": None},
                                 record, kind="child", now=loaded_at).person_id)
        assert len(set(ids)) == 3
        index._merge(ids[0], ids[1], loaded_at + dt.timedelta(hours=1))
        index._merge(ids[1], ids[2], loaded_at + dt.timedelta(hours=2))
        merged = {r.id: r for r in unit.session.connection().execute(select(people).where(people.c.id.in_(ids)))}
    assert [(merged[i].merged_into, merged[i].merged_at) for i in ids] == [
        (ids[2], loaded_at + dt.timedelta(hours=1)), (ids[2], loaded_at + dt.timedelta(hours=2)), (None, None)]
    assert gateway.count(_MP) == 3
    first, again = gateway.purge(batch=1), gateway.purge(batch=1)
    assert first.people_removed + again.people_removed == 3, (first, again)
    assert gateway.count(people) == gateway.count(_MP) == 0


def test_the_retention_period_and_batch_are_checked(gateway):
    with pytest.raises(ValueError, match="at least 1 day"):
        Purge(gateway.store, 0, NOW)
    with pytest.raises(ValueError, match="batch"):
        Purge(gateway.store, 30, NOW, batch=0)


def test_batches_of_one_purge_the_same(gateway):
    ids = [gateway.send(Person(f"Kid{n}", "Batch", "2012-01-01", 200 + n), OLD + dt.timedelta(hours=n))
           for n in range(3)]
    gateway.acknowledge_all()
    report = gateway.purge(batch=1)
    assert sorted(report.purged_messages) == sorted(ids) and report.adds_up and report.people_removed == 3


def test_a_purge_beside_accepts_breaks_neither(gateway):
    """Accepts go on while the purge runs in batches of one, some about the very children being purged: every
    accept is answered 200 and kept, the purge's counts add up, every record belongs to a person who exists, and
    the audit chain is whole."""
    import threading

    old_children = [Person(f"Old{n}", "Racing", "2011-01-01", 300 + n) for n in range(16)]
    for n, child in enumerate(old_children):
        gateway.send(child, OLD + dt.timedelta(minutes=n))
    gateway.acknowledge_all()
    sent: list[str] = []
    failures: list[BaseException] = []

    def accept(children):
        try:
            for child in children:
                sent.append(gateway.send(child, NOW))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    fresh = [Person(f"New{n}", "Arriving", "2016-01-01", 400 + n) for n in range(8)]
    senders = [threading.Thread(target=accept, args=(old_children[0::2],)),
               threading.Thread(target=accept, args=(fresh,))]
    result: dict = {}
    purger = threading.Thread(target=lambda: result.update(report=gateway.purge(batch=1)))
    for thread in (purger, *senders):
        thread.start()
    for thread in (purger, *senders):
        thread.join(timeout=300)
    assert not failures, failures
    report = result["report"]
    assert report.adds_up and report.skipped_batches == 0
    assert report.purged + report.active == len(old_children)
    assert report.purged >= len(old_children) // 2      # the children nobody wrote about again are all gone
    assert gateway.count(_MESSAGE, _MESSAGE.c.message_id.in_(sent)) == len(sent) == 16
    with read_only(gateway.store.engine) as connection:
        orphans = connection.execute(select(_MP.c.id).where(_MP.c.person_id.is_not(None), _MP.c.person_id.not_in(
            select(PersonRow.__table__.c.id)))).all()
        assert orphans == []
        assert verify(connection, None, now=NOW).ok
    # Every child written about again is in the index once more, with today's message.
    assert {c.nhs for c in old_children[0::2] + fresh} <= set(gateway.person_ids().values())


@pytest.mark.postgres
def test_a_person_being_linked_is_not_removed_under_the_accept(upgraded_postgres_schema):
    """The race the accept path's lock closes (PostgreSQL; SQLite has one writer): a transaction has read Alex as
    a candidate when the purge comes to remove Alex, whose only message is past retention. The purge waits for
    it, and the record it then links to Alex commits; Alex stays."""
    import threading
    import time

    from sqlalchemy import text

    from gateway.linkage.index import PersonIndex
    from gateway.linkage.matching import MatchModel, blocking_keys, normalise
    from gateway.store import open_store

    store = open_store(upgraded_postgres_schema.url)
    try:
        with store.transaction() as unit:  # Alex's old record, as the accept path and an initial load write it
            old = normalise(given="Alex", family="Oldcase", birth_date="2010-01-02", nhs_number="9990001010")
            model = MatchModel.load()
            alex = PersonIndex(unit.session.connection(), model).add(
                {"message_id": None, "source": "import", "source_record": "row-1", "record_id": None,
                 "resource": "import", "role": "child", **dataclasses.asdict(old), "postcode_district": None},
                old, kind="child", now=OLD).person_id
        result: dict = {}
        with store.transaction() as unit:
            index = PersonIndex(unit.session.connection(), model)
            assert [c.person_id for c in index._candidates(-1, blocking_keys(old), "child")] == [alex]
            purger = threading.Thread(target=lambda: result.update(report=Purge(store, RETENTION_DAYS, NOW).run()))
            purger.start()
            for _ in range(200):  # until the purge waits for this transaction's lock on Alex
                with store.engine.connect() as probe:
                    if probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND query LIKE 'DELETE FROM person WHERE%'")).scalar_one():
                        break
                time.sleep(0.02)
            linked = index.add({"message_id": None, "source": "import", "source_record": "row-2", "record_id": None,
                                "resource": "import", "role": "child", **dataclasses.asdict(old),
                                "postcode_district": None}, old, kind="child", now=NOW)
            assert linked.person_id == alex
        purger.join(timeout=60)
        report = result["report"]
        assert report.people_removed == 0 and report.skipped_batches == 0
        with read_only(store.engine) as connection:
            assert connection.execute(select(PersonRow.__table__.c.id).where(
                PersonRow.__table__.c.id == alex)).first() is not None
    finally:
        store.close()


def test_the_daily_purge_runs_beside_the_worker_and_stops_when_asked(gateway):
    import time

    from gateway.retention.schedule import AGENT, DailyPurge

    old = gateway.send(ALEX, OLD)
    gateway.acknowledge_all()
    daily = DailyPurge(gateway.store, RETENTION_DAYS, clock=lambda: NOW).start()
    try:
        for _ in range(1200):  # its first purge runs at once; wait for it to end
            if daily.reports:
                break
            time.sleep(0.05)
    finally:
        daily.stop()
    assert not daily._thread.is_alive()
    assert [r.purged_messages for r in daily.reports] == [[old]]
    with read_only(gateway.store.engine) as connection:
        agents = set(connection.execute(select(AuditEventRow.agent).where(AuditEventRow.subtype == "purge")).scalars())
    assert agents == {AGENT}


def test_a_purge_asked_to_stop_stops_between_batches(gateway):
    for n in range(3):
        gateway.send(Person(f"Kid{n}", "Stopping", "2012-01-01", 500 + n), OLD + dt.timedelta(hours=n))
    gateway.acknowledge_all()
    asked = iter([False, True])
    report = Purge(gateway.store, RETENTION_DAYS, NOW, batch=1, should_stop=lambda: next(asked, True)).run()
    assert report.stopped and report.purged == 1 and "stopped early" in report.summary()
    assert gateway.count(_MESSAGE) == 2


@pytest.mark.postgres
def test_a_hold_placed_while_a_purge_runs_is_seen_by_it(upgraded_postgres_schema):
    """PostgreSQL: a purge batch locks legal_hold while it decides, so a hold being placed is waited for and seen,
    never half-seen (SQLite has one writer: a hold and a batch never overlap there)."""
    import threading
    import time

    from sqlalchemy import text

    from gateway.linkage.index import PersonIndex
    from gateway.linkage.matching import MatchModel, normalise
    from gateway.store import open_store
    from gateway.store.models import AcceptedMessageRow as Message

    store = open_store(upgraded_postgres_schema.url)
    try:
        with store.transaction() as unit:  # a message past retention naming Alex (written as the accept path does)
            unit.session.execute(Message.__table__.insert(), {
                "message_id": "urn:uuid:00000000-0000-4000-8000-00000000a1ex", "sender_agency": "urn:x", "received_at": OLD,
                "message_timestamp": OLD, "payload_sha256": "0" * 64, "raw_message": "{}", "signed_message": "{}",
                "response_status": 200, "response_body": "{}"})
            record = normalise(given="Alex", family="Oldcase", birth_date="2010-01-02", nhs_number="9990001010")
            alex = PersonIndex(unit.session.connection(), MatchModel.load()).add(
                {"message_id": "urn:uuid:00000000-0000-4000-8000-00000000a1ex", "source": "urn:x",
                 "source_record": "r1", "record_id": None, "resource": "Patient/child", "role": "child",
                 **dataclasses.asdict(record), "postcode_district": None}, record, kind="child", now=OLD).person_id
        result: dict = {}
        with store.transaction() as unit:
            place_hold(unit.session, alex, reason="Inquiry ref FIC-9", by="R. Manager", now=NOW)
            purger = threading.Thread(target=lambda: result.update(report=Purge(store, RETENTION_DAYS, NOW).run()))
            purger.start()
            for _ in range(200):  # until the purge's batch waits for this transaction's hold
                with store.engine.connect() as probe:
                    if probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND query LIKE 'LOCK TABLE legal_hold%'")).scalar_one():
                        break
                time.sleep(0.02)
        purger.join(timeout=60)
        report = result["report"]
        assert (report.held, report.purged, report.skipped_batches) == (1, 0, 0)
    finally:
        store.close()


def test_a_large_dry_run_says_it_does_not_foresee_the_people(gateway, monkeypatch):
    import gateway.retention.purge as purge_module

    gateway.send(ALEX, OLD)
    gateway.acknowledge_all()
    assert gateway.purge(dry_run=True).people_removed == 1
    monkeypatch.setattr(purge_module, "DRY_RUN_PEOPLE_LIMIT", 0)
    dry = gateway.purge(dry_run=True)
    assert (dry.purged, dry.people_removed, dry.people_foreseen) == (1, 0, False)
    assert gateway.purge().people_removed == 1 and gateway.purge().people_foreseen


def test_the_purge_follows_every_foreign_key_to_a_message_or_its_records():
    """Read from the models independently of the purge's own walk: every foreign key to ``accepted_message`` or
    ``message_person`` is one the purge follows (a table a later step adds is purged with no change here)."""
    expected = {(table.name, fk.parent.name) for table in metadata.tables.values() for fk in table.foreign_keys
                if fk.column.table.name in ("accepted_message", "message_person")}
    followed = {(child.name, column.name) for parent in (_MESSAGE, _MP) for child, pairs in _referencing(parent)
                for column, _ in pairs}
    assert followed == expected
    assert {("delivery", "message_id"), ("delivery_unroutable", "message_id"), ("message_person", "message_id"),
            ("person_link_key", "record_id"), ("person_link_decision", "record_id"), ("possible_match", "record_id"),
            ("person_relation", "message_id"), ("message_event", "message_id"), ("possible_duplicate", "message_id"),
            ("possible_duplicate", "duplicate_of"), ("escalation", "message_id"), ("deadline", "message_id")} <= followed
    assert not {name for name, _ in followed} & {"audit_event", "audit_chain_head", "audit_checkpoint", "legal_hold"}
