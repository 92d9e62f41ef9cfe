"""The inbox read model (``inbox_entry``, gateway.delivery.inbox): the inbox read from it is the inbox the source
tables give, for every order, status and filter, page by page; each write keeps it in step.

The expected inbox is worked out here in Python from the source tables (deliveries, events, accepted messages,
deadlines, the people and possible duplicates), independently of the SQL that builds and reads the entries.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import uuid

import pytest
from sqlalchemy import delete, insert, select, update

from gateway.delivery import inbox
from gateway.delivery.models import (
    ACKNOWLEDGED,
    DEAD_LETTERED,
    INBOX_COUNT_NONE,
    INBOX_COUNT_SLOTS,
    IN_FLIGHT,
    KIND_BUILT,
    KIND_MESSAGE,
    MAILBOX,
    PENDING,
    DeliveryRow,
    InboxCountRow,
    InboxEntryRow,
)
from gateway.linkage import deadlines as D
from gateway.linkage.models import DeadlineRow, MessageEventRow, PossibleDuplicateRow
from gateway.model import systems as S
from gateway.store.models import AcceptedMessageRow, MessagePersonRow
from gateway.web.console import queries
from tests.shared_console import HAMPSHIRE, REFERRAL_DAY, SCHOOL

_D = DeliveryRow.__table__
_E = MessageEventRow.__table__
_A = AcceptedMessageRow.__table__
_DL = DeadlineRow.__table__
_MP = MessagePersonRow.__table__
_DUP = PossibleDuplicateRow.__table__
_ENTRY = InboxEntryRow.__table__
_COUNT = InboxCountRow.__table__

NOW = REFERRAL_DAY + dt.timedelta(days=3)
OTHER_LA = S.agency_uri("la", "999")
RISKS = ("high", "medium", "standard", "low")
ALERT_RULE, REMINDER_RULE = "escalation:multi-agency-concerns", "deadline-alert-agency"
ENCOMPASS_RULE = "operation-encompass-to-la"


# The inbox as the source tables give it, in Python --------------------------------------------------------------

def _read(connection) -> dict:
    return {
        "deliveries": connection.execute(select(_D.c.id, _D.c.message_id, _D.c.kind, _D.c.destination, _D.c.rule,
                                                _D.c.state, _D.c.created_at)).all(),
        "events": {e.message_id: e for e in connection.execute(select(_E))},
        "accepted": {a.message_id: a for a in connection.execute(select(_A.c.message_id, _A.c.completeness,
                                                                        _A.c.response_body))},
        "deadlines": connection.execute(select(_DL).order_by(_DL.c.id)).all(),
    }


def _what(rule, event) -> str | None:
    if rule and rule.startswith("escalation:"):
        return S.EVENT_ALERT
    if rule and rule.startswith("deadline-"):
        return S.EVENT_OVERDUE
    if rule in ("operation-encompass-to-school", "operation-encompass-to-la"):
        return S.EVENT_ENCOMPASS
    return event.kind if event is not None else None


def expected_entries(connection) -> dict[str, dict]:
    """Every delivery the inbox lists, with what it shows, sorts and filters by, from the source tables."""
    source = _read(connection)
    out = {}
    for d in source["deliveries"]:
        if d.kind not in (KIND_MESSAGE, KIND_BUILT):
            continue
        event = source["events"].get(d.message_id)
        deadline = None
        if d.kind == KIND_MESSAGE:  # the first inbox deadline of this agency for this message
            deadline = next((dl for dl in source["deadlines"] if dl.message_id == d.message_id
                             and dl.agency == d.destination
                             and dl.kind in (D.DEADLINE_DECISION, D.DEADLINE_ENCOMPASS)), None)
        risk = event.risk if event is not None else None
        out[d.id] = {
            "delivery_id": d.id, "agency": d.destination, "message_id": d.message_id, "received_at": d.created_at,
            "state": d.state, "kind": _what(d.rule, event), "has_event": event is not None,
            "sender": event.sender_agency if event is not None else None, "risk": risk,
            "risk_rank": {"high": 0, "medium": 1, "standard": 2, "low": 3}.get(risk, 4),
            "categories": event.categories if event is not None else None,
            "late_days": event.late_days if event is not None else None,
            "version": event.version if event is not None else None,
            "child_person_id": event.child_person_id if event is not None else None,
            "completeness": source["accepted"][d.message_id].completeness,
            "deadline_id": deadline.id if deadline is not None else None,
            "due_at": deadline.due_at if deadline is not None else None,
            "met_at": deadline.met_at if deadline is not None else None,
            "status": None if deadline is None else "open" if deadline.met_at is None else "decided",
        }
    return out


def stored_entries(connection) -> dict[str, dict]:
    rows = {r.delivery_id: dict(r._mapping) for r in connection.execute(select(_ENTRY))}
    for row in rows.values():
        assert row.pop("received_rev") == inbox.received_rev(row["received_at"])
        row["has_event"] = bool(row["has_event"])
    return rows


def counts_of(connection) -> dict[tuple, int]:
    """``inbox_count``'s count of each group (agency, status, kind, risk rank, risk; '' for NULL): the sum of its
    slots, groups at 0 left out. Each slot is 0 on SQLite, 0-7 on PostgreSQL."""
    sums: collections.Counter = collections.Counter()
    slots = range(INBOX_COUNT_SLOTS) if connection.dialect.name == "postgresql" else range(1)
    for row in connection.execute(select(_COUNT)):
        assert row.slot in slots, row
        sums[row.agency, row.status, row.kind, row.risk_rank, row.risk] += row.n
    return {group: n for group, n in sums.items() if n}


def assert_counts_in_step(connection) -> dict[tuple, int]:
    """The counts the triggers keep are, group by group, the stored entries' (GROUP BY ... count(*))."""
    entries = collections.Counter(
        tuple(INBOX_COUNT_NONE if v is None else v for v in row)
        for row in connection.execute(select(_ENTRY.c.agency, _ENTRY.c.status, _ENTRY.c.kind, _ENTRY.c.risk_rank,
                                             _ENTRY.c.risk)))
    assert counts_of(connection) == dict(entries)
    return dict(entries)


def assert_in_step(store) -> dict[str, dict]:
    """The stored entries are exactly those the source tables give, and their counts those the triggers keep."""
    with store.engine.connect() as connection:
        expected = expected_entries(connection)
        assert stored_entries(connection) == expected
        assert_counts_in_step(connection)
    return expected


def expected_inbox(connection, agency: str, query: queries.InboxQuery, now: dt.datetime) -> list[dict]:
    """The whole inbox (every page) of ``query``: its rows in order, as queries.inbox gives each."""
    entries = [e for e in expected_entries(connection).values() if e["agency"] == agency]
    if query.kind:
        entries = [e for e in entries if e["kind"] == query.kind]
    if query.risk:
        entries = [e for e in entries if e["risk"] == query.risk]
    if query.status == "open":
        entries = [e for e in entries if e["deadline_id"] is not None and e["met_at"] is None]
    elif query.status == "overdue":
        entries = [e for e in entries if e["deadline_id"] is not None and e["met_at"] is None and e["due_at"] < now]
    elif query.status == "decided":
        entries = [e for e in entries if e["met_at"] is not None]
    descending = query.order == "desc"
    entries.sort(key=lambda e: e["delivery_id"])  # ties last by delivery id ...
    if query.sort == "received":
        entries.sort(key=lambda e: e["received_at"], reverse=descending)
    else:  # ... then newest first, then by the column, rows without a value last either way
        entries.sort(key=lambda e: e["received_at"], reverse=True)
        column = {"due": "due_at", "risk": "risk_rank", "kind": "kind", "sender": "sender"}[query.sort]
        valued = sorted((e for e in entries if e[column] is not None), key=lambda e: e[column], reverse=descending)
        entries = valued + [e for e in entries if e[column] is None]
    ids = {e["message_id"] for e in entries}
    duplicates = set()
    for d in connection.execute(select(_DUP).where(_DUP.c.status == "open")):
        duplicates.update((d.message_id, d.duplicate_of))
    children: dict[str, str] = {}
    for mp in connection.execute(select(_MP).where(_MP.c.role == "child").order_by(_MP.c.id)):
        if mp.message_id in ids:
            children.setdefault(mp.message_id, " ".join(p for p in (mp.given, mp.family) if p).title())
    accepted = _read(connection)["accepted"]
    rows = []
    for e in entries:
        gateway_made = e["kind"] in (S.EVENT_ALERT, S.EVENT_OVERDUE)
        completeness = e["completeness"]
        if completeness is None and e["has_event"]:
            completeness = queries._completeness(accepted[e["message_id"]].response_body)
        flags = []
        if not gateway_made and e["has_event"]:
            if e["message_id"] in duplicates:
                flags.append("Possible duplicate")
            if e["version"] and e["version"] > 1:
                flags.append(f"Version {e['version']}")
            if e["late_days"]:
                flags.append(f"Sent {e['late_days']} days late")
        kind = e["kind"]
        rows.append({
            "delivery_id": e["delivery_id"], "message_id": e["message_id"], "received_at": e["received_at"],
            "state": e["state"], "kind": kind,
            "kind_display": queries.MESSAGE_EVENTS.get(kind, (kind or "Message", ""))[0],
            "sender": e["sender"], "risk": e["risk"], "categories": json.loads(e["categories"] or "[]"),
            "child": children.get(e["message_id"], ""), "person_id": e["child_person_id"],
            "due_at": e["due_at"], "met_at": e["met_at"],
            "overdue": e["due_at"] is not None and e["met_at"] is None and e["due_at"] < now,
            "gateway_made": gateway_made, "completeness": None if gateway_made else completeness, "flags": flags,
        })
    return rows


# A varied inbox ------------------------------------------------------------------------------------------------

def _vary(console) -> None:
    """Family A, then copies of the school's referral to Hampshire inserted straight into the tables (as
    bench/console.py makes its inbox) with every risk (none, and values outside the order), kinds the gateway
    makes, Operation Encompass, deadlines met, open, absent, due before and after NOW, ties of receipt time,
    two deliveries of one message to one agency, a message without an event, deliveries to another agency;
    their entries are made by the same refresh."""
    console.family_a()
    risks = (*RISKS, None, "severe", "High")
    with console.store.engine.begin() as connection:
        (original,) = connection.execute(select(_D).where(_D.c.rule == "school-referral-to-home-la")).mappings()
        accepted = connection.execute(select(_A).where(_A.c.message_id == original["message_id"])).mappings().one()
        event = connection.execute(select(_E).where(_E.c.message_id == original["message_id"])).mappings().one()
        made = []
        for n in range(40):
            mid = f"urn:uuid:{uuid.uuid4()}"
            at = REFERRAL_DAY + dt.timedelta(hours=n // 3 - 6)  # three at a time: ties of receipt time
            connection.execute(insert(_A), {**accepted, "message_id": mid, "received_at": at,
                                            "completeness": (None, 40, 90)[n % 3]})
            if n % 13 != 5:  # one in thirteen without an event
                connection.execute(insert(_E), {
                    **event, "message_id": mid, "risk": risks[n % len(risks)], "received_at": at,
                    "kind": (event["kind"], S.EVENT_CONCERN, S.EVENT_REFERRAL)[n % 3],
                    "sender_agency": (event["sender_agency"], "urn:x-safeguarding:agency:police:b", None)[n % 3]
                    or "urn:x-safeguarding:agency:aa",
                    "late_days": (None, 0, 4)[n % 3], "version": 1 + n % 2})
            destination = OTHER_LA if n % 7 == 3 else HAMPSHIRE
            kind, rule = KIND_MESSAGE, original["rule"]
            if n % 9 == 4:
                kind, rule = KIND_BUILT, ALERT_RULE
            elif n % 9 == 7:
                kind, rule = KIND_BUILT, REMINDER_RULE
            elif n % 11 == 2:
                rule = ENCOMPASS_RULE
            copies = 2 if n % 10 == 6 else 1  # a notice split per child: two deliveries of one message
            for c in range(copies):
                delivery_id = str(uuid.uuid4())
                connection.execute(insert(_D), {**original, "id": delivery_id, "message_id": mid, "kind": kind,
                                                "rule": rule, "destination": destination,
                                                "payload_message_id": f"{mid}-{c}", "created_at": at,
                                                "state": (PENDING, ACKNOWLEDGED, DEAD_LETTERED)[n % 3]})
            deadline_kind = D.DEADLINE_ENCOMPASS if rule == ENCOMPASS_RULE else D.DEADLINE_DECISION
            if n % 4 != 1:  # one in four without a deadline
                connection.execute(insert(_DL), {
                    "message_id": mid, "agency": destination if n % 8 != 2 else SCHOOL, "kind": deadline_kind,
                    "due_at": at + dt.timedelta(days=(1, 4, 2)[n % 3]), "created_at": at,
                    "met_at": at + dt.timedelta(hours=5) if n % 5 == 0 else None})
            if n % 12 == 0:  # an assessment deadline is not the inbox's
                connection.execute(insert(_DL), {"message_id": mid, "agency": destination, "kind": "assessment",
                                                 "due_at": at, "created_at": at})
            made.append(mid)
        inbox.refresh(connection, message_ids=made)


QUERIES = [queries.InboxQuery(sort=sort, order=order, status=status, **filters)
           for sort in queries.INBOX_SORTS for order in ("asc", "desc") for status in queries.INBOX_STATUSES
           for filters in ({}, {"kind": S.EVENT_CONCERN}, {"kind": S.EVENT_ALERT}, {"risk": "high"},
                           {"risk": "severe"}, {"kind": S.EVENT_REFERRAL, "risk": "medium"})]


def test_the_inbox_read_from_its_entries_is_the_inbox_the_tables_give_in_every_order_and_filter(console):
    _vary(console)
    assert_in_step(console.store)
    with console.store.engine.connect() as connection:
        for agency, query in itertools.product((HAMPSHIRE, OTHER_LA), QUERIES):
            expected = expected_inbox(connection, agency, query, NOW)
            whole = queries.inbox(connection, agency, query, now=NOW, page_size=100)
            assert whole["total"] == len(expected), (agency, query)
            assert whole["rows"] == expected, (agency, query)
            if query.status or query.kind or query.risk or len(expected) < 8:
                continue  # pages of the unfiltered inbox, where the rows without a value begin mid-page
            size = 7
            for number in range(1, len(expected) // size + 2):
                page = queries.inbox(connection, agency, queries.InboxQuery(**{**query.__dict__, "page": number}),
                                     now=NOW, page_size=size)
                assert page["rows"] == expected[(number - 1) * size:number * size], (agency, query, number)
                assert page["total"] == len(expected) and page["pages"] == -(-len(expected) // size)


@pytest.mark.parametrize("size", [1, 3, 4])
def test_pages_of_every_filtered_order_join_up_into_the_whole(console, size):
    _vary(console)
    with console.store.engine.connect() as connection:
        for query in QUERIES:
            if not (query.status or query.kind or query.risk):
                continue
            whole = queries.inbox(connection, HAMPSHIRE, query, now=NOW, page_size=100)["rows"]
            pages = [queries.inbox(connection, HAMPSHIRE, queries.InboxQuery(**{**query.__dict__, "page": n}),
                                   now=NOW, page_size=size)["rows"] for n in range(1, len(whole) // size + 2)]
            assert [r["delivery_id"] for p in pages for r in p] == [r["delivery_id"] for r in whole], query


# Each write keeps the entries in step --------------------------------------------------------------------------

def test_accepting_routing_deciding_and_relinking_keep_the_entries_in_step(console):
    """New deliveries (routed messages, escalation alerts), the events and deadlines made after them in the
    accepting transaction, a decision that meets a deadline, and a child's record moved to another person."""
    from tests.shared_console import DATA, DISCLOSURE_DAY, DORSET, POLICE_DAY, school_rows

    console.ingest(DORSET, "ppn-xml", (DATA / "dorset-police-ppn.xml").read_bytes(), POLICE_DAY)
    assert assert_in_step(console.store)
    console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    assert_in_step(console.store)
    console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4263"), REFERRAL_DAY)
    entries = assert_in_step(console.store)
    assert any(e["kind"] == S.EVENT_ALERT for e in entries.values()), "Family A raises an escalation alert"
    (referral,) = [e for e in entries.values() if e["status"] == "open" and e["agency"] == HAMPSHIRE
                   and e["sender"] == SCHOOL]
    answer = console.post(f"/la/messages/{referral['message_id']}/decision", HAMPSHIRE,
                          {"decision": "no-further-action", "reason": "Fictional reason."})
    assert answer.status_code == 303
    entries = assert_in_step(console.store)
    assert entries[referral["delivery_id"]]["status"] == "decided"
    # Relinking: a record moved to a new person (unlink) and two people merged.
    from gateway.linkage.index import PersonIndex
    from gateway.linkage.matching import MatchModel

    with console.store.engine.begin() as connection:
        (record,) = connection.execute(select(_MP.c.id, _MP.c.person_id).where(
            _MP.c.message_id == referral["message_id"], _MP.c.role == "child")).all()
        index = PersonIndex(connection, MatchModel.load())
        new = index.unlink(record.id, by=HAMPSHIRE, reason="Fictional: not the same child.", now=NOW)
    entries = assert_in_step(console.store)
    assert entries[referral["delivery_id"]]["child_person_id"] == new != record.person_id
    with console.store.engine.begin() as connection:
        PersonIndex(connection, MatchModel.load())._merge(new, record.person_id, NOW)
    entries = assert_in_step(console.store)
    assert entries[referral["delivery_id"]]["child_person_id"] == record.person_id


def test_an_accepted_message_builds_each_entry_once_when_its_transaction_ends(console):
    """Routing adds the deliveries, then the linkage the event and deadlines they show, in one transaction: each
    entry is built once, at its end, from the final rows (not once by each write); an alert about another
    message, added in the same transaction, is built in the same refresh. The entries are in step after."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from tests.shared_console import DATA, DISCLOSURE_DAY, DORSET, POLICE_DAY, school_rows

    console.ingest(DORSET, "ppn-xml", (DATA / "dorset-police-ppn.xml").read_bytes(), POLICE_DAY)
    console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4101"), DISCLOSURE_DAY, concerns=True)
    before = set(assert_in_step(console.store))
    written: list[str] = []  # the delivery id of each entry written

    def count(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO inbox_entry"):
            for row in (parameters if executemany else [parameters]):
                written.append(row["delivery_id"] if isinstance(row, dict) else row[0])

    event.listen(Engine, "before_cursor_execute", count)  # every engine: the app's store is its own
    try:
        console.ingest(SCHOOL, "schoolsafe-csv", school_rows("4263"), REFERRAL_DAY)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    entries = assert_in_step(console.store)
    made = set(entries) - before
    assert any(entries[d]["kind"] == S.EVENT_ALERT for d in made) and len(made) >= 2  # the referral and an alert
    assert sorted(d for d in written if d in made) == sorted(made)  # each new entry written once
    # (The earlier entries written again are those whose child the linking moved: a merge refreshes them.)


def test_delivery_states_keep_the_entries_in_step(console):
    """Claimed, acknowledged, retried, dead-lettered, requeued, and a mailbox's acknowledgement."""
    from gateway.delivery.outbox import dead_letter
    from gateway.delivery.services import SqlOutbox, acknowledge

    console.family_a()
    at = NOW
    with console.store.engine.begin() as connection:  # none expired yet (not shown in the inbox)
        connection.execute(update(_D).values(expires_at=at + dt.timedelta(days=30)))
    with console.store.transaction() as unit:
        outbox = SqlOutbox(unit.session)
        claims = outbox.claim(now=at, limit=100, worker="w", lease=dt.timedelta(minutes=5))
    assert len(claims) >= 3
    entries = assert_in_step(console.store)
    assert {entries[c.id]["state"] for c in claims if c.id in entries} == {IN_FLIGHT}
    first, second, third, *_ = [c for c in claims if c.id in entries]
    with console.store.transaction() as unit:
        outbox = SqlOutbox(unit.session)
        assert outbox.acknowledge_claim(first, at)
        row = outbox.held(second)
        dead_letter(outbox, row, "refused", now=at, signer=None, directory=None, max_age=dt.timedelta(days=1),
                    gateway_agency=None)
    entries = assert_in_step(console.store)
    assert (entries[first.id]["state"], entries[second.id]["state"]) == (ACKNOWLEDGED, DEAD_LETTERED)
    with console.store.transaction() as unit:
        SqlOutbox(unit.session).requeue(second.id, now=at, max_age=dt.timedelta(days=1))
    assert assert_in_step(console.store)[second.id]["state"] == PENDING
    # A retry (the worker's outcome: back to pending), as the worker records it.
    import random
    import types

    from gateway.delivery.worker import OutboxWorker, _Outcome

    worker = OutboxWorker(console.store, types.SimpleNamespace(timeout=1), rng=random.Random(1))
    with console.store.transaction() as unit:
        assert worker._record_in(SqlOutbox(unit.session), third, _Outcome("retry", "HTTP 503"), at) == "retry"
    assert assert_in_step(console.store)[third.id]["state"] == PENDING
    with console.store.transaction() as unit:
        mailbox = unit.session.scalars(select(DeliveryRow).where(DeliveryRow.mode == MAILBOX,
                                                                 DeliveryRow.state == PENDING,
                                                                 DeliveryRow.kind == KIND_MESSAGE)).first()
        assert mailbox is not None, "Family A has a mailbox delivery"
        acknowledge(mailbox, at)
    assert assert_in_step(console.store)[mailbox.id]["state"] == ACKNOWLEDGED


def test_the_retention_purge_takes_the_entries_with_their_deliveries(console):
    from gateway.retention.purge import Purge

    console.family_a()
    with console.store.engine.begin() as connection:  # every delivery closed, so every message may go
        connection.execute(update(_D).values(state=ACKNOWLEDGED))
        inbox.refresh(connection, connection.execute(select(_D.c.id)).scalars().all())
    assert assert_in_step(console.store)
    report = Purge(console.store, 30, NOW + dt.timedelta(days=3650)).run()
    assert report.purged and report.rows["inbox_entry"] > 0
    assert assert_in_step(console.store) == {}
    with console.store.engine.connect() as connection:
        assert connection.execute(select(_ENTRY)).all() == []


def test_an_entry_goes_with_its_delivery_deleted_by_any_means(console):
    console.family_a()
    with console.store.engine.begin() as connection:
        gone = connection.execute(select(_ENTRY.c.delivery_id)).scalars().first()
        connection.execute(delete(_D).where(_D.c.id == gone))
    entries = assert_in_step(console.store)
    assert gone not in entries and entries


# Revision 0008 fills the table from the rows already stored -------------------------------------------------------

def test_upgrading_a_database_that_holds_messages_makes_their_entries_as_refresh_does(console):
    """A database at revision 0007 holding a varied inbox, upgraded: revision 0008's SQL makes exactly the entries
    the refresh makes (and the source tables give); a second downgrade and upgrade make them again."""
    from alembic import command

    from gateway.store import schema

    _vary(console)
    made_by_refresh = assert_in_step(console.store)
    for _ in range(2):
        with console.store.engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "0007_accepted_completeness")
        with console.store.engine.connect() as connection:
            assert "inbox_entry" not in connection.dialect.get_table_names(connection)
        assert schema.upgrade(console.store.engine) == schema.head()
        assert assert_in_step(console.store) == made_by_refresh
    with console.store.engine.begin() as connection:
        assert inbox.refresh_all(connection) == len(made_by_refresh)
    assert assert_in_step(console.store) == made_by_refresh


@pytest.mark.postgres
@pytest.mark.parametrize("console", ["postgres"], indirect=True)
def test_a_refresh_waits_for_a_state_change_in_flight_and_writes_the_new_state(console):
    """On PostgreSQL a refresh that starts while a worker's state change is uncommitted must not write the old
    state over the new one (it would read the old state, wait for the entry's row, then replace it): it waits
    for the delivery's row lock, then reads."""
    import threading

    console.family_a()
    with console.store.engine.connect() as connection:
        delivery_id = connection.execute(select(_ENTRY.c.delivery_id).where(_ENTRY.c.state == PENDING)).scalar()
    refreshed = threading.Event()

    def refresh():
        with console.store.engine.begin() as connection:
            inbox.refresh(connection, [delivery_id])
        refreshed.set()

    thread = threading.Thread(target=refresh)
    with console.store.transaction() as unit:  # the worker's change, uncommitted while the refresh starts
        connection = unit.session.connection()
        connection.execute(update(_D).where(_D.c.id == delivery_id).values(state=ACKNOWLEDGED))
        inbox.refresh_states(connection, [delivery_id])
        thread.start()
        assert not refreshed.wait(0.5), "the refresh waits for the worker's transaction"
    thread.join(10)
    assert refreshed.is_set()
    assert assert_in_step(console.store)[delivery_id]["state"] == ACKNOWLEDGED
