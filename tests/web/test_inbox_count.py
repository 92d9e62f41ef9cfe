"""The inbox's count kept by the database (``inbox_count``, revision 0009): triggers on ``inbox_entry`` keep, per
agency, status, kind and risk, exactly ``count(*)`` of its entries, and the inbox's total read from them is the
inbox's length for every filter and clock, on SQLite and PostgreSQL.

Every write path of test_inbox_entry.py checks the counts too (its ``assert_in_step``), and its differential of
every order and filter compares each total with the inbox worked out in Python. Here: updates made by hand (no
write of the gateway updates the counted columns of an entry: the refresh deletes and inserts), the overdue at
clocks between the due times, the revision's fill and downgrade, and concurrent writers on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import threading
import uuid

import pytest
from sqlalchemy import delete, event, insert, inspect, select, text, update

from gateway.delivery import inbox
from gateway.delivery.models import INBOX_COUNT_SLOTS, KIND_BUILT, DeliveryRow
from gateway.linkage.models import DeadlineRow
from gateway.model import systems as S
from gateway.web.console import queries
from tests.shared_console import HAMPSHIRE
from tests.web.test_inbox_entry import (
    _COUNT,
    _ENTRY,
    ALERT_RULE,
    NOW,
    OTHER_LA,
    _vary,
    assert_counts_in_step,
    assert_in_step,
    counts_of,
    expected_inbox,
)

_D = DeliveryRow.__table__
_DL = DeadlineRow.__table__
FILTERS = ({}, {"kind": S.EVENT_CONCERN}, {"kind": S.EVENT_ALERT}, {"kind": S.EVENT_REFERRAL}, {"risk": "high"},
           {"risk": "severe"}, {"risk": "High"}, {"kind": S.EVENT_REFERRAL, "risk": "medium"})


def _in_step(console) -> dict[tuple, int]:
    with console.store.engine.connect() as connection:
        return assert_counts_in_step(connection)


# Writes no path of the gateway makes ------------------------------------------------------------------------

def test_an_entry_updated_by_hand_moves_its_count_to_its_new_group(console):
    """The refresh deletes and inserts; an UPDATE of the agency, status, kind, risk rank or risk (to and from
    NULL too) moves the entry's count, one of the state alone, or to the same values, moves nothing."""
    _vary(console)
    with console.store.engine.connect() as connection:
        ids = connection.execute(select(_ENTRY.c.delivery_id).order_by(_ENTRY.c.delivery_id)).scalars().all()
    changes = [{"status": None}, {"status": "decided"}, {"status": "open"}, {"kind": None}, {"kind": "x-other"},
               {"risk": None, "risk_rank": 4}, {"risk": "high", "risk_rank": 0}, {"agency": OTHER_LA},
               {"agency": HAMPSHIRE, "status": None, "kind": None, "risk": None}, {"state": "acknowledged"}]
    for delivery_id, change in zip(itertools.cycle(ids[:7]), changes * 2):
        with console.store.engine.begin() as connection:
            connection.execute(update(_ENTRY).where(_ENTRY.c.delivery_id == delivery_id).values(**change))
        _in_step(console)
    with console.store.engine.begin() as connection:  # several rows in one statement, and values unchanged
        connection.execute(update(_ENTRY).where(_ENTRY.c.delivery_id.in_(ids[:20])).values(kind=_ENTRY.c.kind))
        connection.execute(update(_ENTRY).where(_ENTRY.c.delivery_id.in_(ids[5:25])).values(status="open"))
    _in_step(console)
    with console.store.engine.begin() as connection:  # the repair: every entry deleted and made again
        inbox.refresh_all(connection)
    assert_in_step(console.store)


@pytest.mark.postgres
@pytest.mark.parametrize("console", ["postgres"], indirect=True)
def test_on_postgresql_truncating_the_entries_empties_the_counts(console):
    _vary(console)
    assert _in_step(console)
    with console.store.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE inbox_entry")
    assert _in_step(console) == {}
    with console.store.engine.begin() as connection:
        inbox.refresh_all(connection)
    assert assert_in_step(console.store)


# The overdue: the open less those not due yet -----------------------------------------------------------------

def test_the_overdue_are_counted_at_every_clock_between_the_due_times(console):
    """Clocks before, at, just after and between every due time: the total of the overdue (and of every other
    status, with each filter) is the number of rows the inbox lists, and the inbox worked out in Python's. An
    open entry without a due time (made by hand: an open deadline has one) is never overdue."""
    _vary(console)
    with console.store.engine.connect() as connection:
        due = sorted(set(connection.execute(select(_ENTRY.c.due_at).where(
            _ENTRY.c.status == "open", _ENTRY.c.agency == HAMPSHIRE, _ENTRY.c.due_at.is_not(None))).scalars()))
    assert len(due) > 5
    step = dt.timedelta(microseconds=1)
    clocks = [due[0] - dt.timedelta(days=1), due[-1] + dt.timedelta(days=1)]
    clocks += [t + d for t in due for d in (-step, dt.timedelta(0), step)]

    def check(expected_of, *, listed=queries.INBOX_STATUSES):
        """The totals are ``expected_of``'s, and the number of rows listed for the statuses ``listed``."""
        with console.store.engine.connect() as connection:
            for now in clocks:
                for status, filters in itertools.product(queries.INBOX_STATUSES, FILTERS):
                    query = queries.InboxQuery(status=status, **filters)
                    found = queries.inbox(connection, HAMPSHIRE, query, now=now, page_size=100)
                    assert found["total"] == expected_of(connection, query, now), (now, status, filters)
                    if status in listed:
                        assert found["total"] == len(found["rows"]), (now, status, filters)

    seen = set()

    def expected(connection, query, now):
        rows = expected_inbox(connection, HAMPSHIRE, query, now)
        if query.status == "overdue":
            seen.add(len(rows))
        return len(rows)

    clocks = clocks[:2] + clocks[2::7]  # every clock below is checked; the whole inbox in Python is slow
    check(expected)
    assert len(seen) > 3, "the clocks fall between due times"
    # Open entries without a due time.
    with console.store.engine.begin() as connection:
        opened = connection.execute(select(_ENTRY.c.delivery_id).where(
            _ENTRY.c.agency == HAMPSHIRE, _ENTRY.c.status == "open").limit(3)).scalars().all()
        connection.execute(update(_ENTRY).where(_ENTRY.c.delivery_id.in_(opened)).values(due_at=None))
    _in_step(console)
    clocks = [due[0] - dt.timedelta(days=1), due[-1] + dt.timedelta(days=1)] + [t + d for t in due
                                                                                for d in (-step, step)]

    def stored(connection, query, now):
        """The number of the stored entries under the query's filters (``due_at < now`` false for NULL)."""
        entries = [r._mapping for r in connection.execute(select(_ENTRY).where(_ENTRY.c.agency == HAMPSHIRE))]
        return sum(1 for e in entries if (not query.kind or e["kind"] == query.kind)
                   and (not query.risk or e["risk"] == query.risk)
                   and (query.status == "" or e["status"] == ("decided" if query.status == "decided" else "open"))
                   and (query.status != "overdue" or (e["due_at"] is not None and e["due_at"] < now)))

    # The page lists by status and due time, so an open entry without one is listed only when it is not
    # filtered by status (never overdue), as ever: the totals of "all" and "overdue" are the rows listed.
    check(stored, listed=("", "overdue"))


@pytest.mark.parametrize("console", ["sqlite"], indirect=True)
def test_the_count_reads_one_range_of_the_counts_and_the_not_yet_due_one_range_of_an_index(console):
    """SQLite's plans: the counts' key by agency (first), and the open entries due from now (or without a due
    time) each one range of the index of status and due time, not every open entry of the agency."""
    _vary(console)
    statements = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(console.store.engine, "before_cursor_execute", capture)
    try:
        with console.store.engine.connect() as connection:
            for status, filters in itertools.product(queries.INBOX_STATUSES, FILTERS):
                queries._inbox_total(connection, HAMPSHIRE, queries.InboxQuery(status=status, **filters), NOW)
    finally:
        event.remove(console.store.engine, "before_cursor_execute", capture)
    counted = [(s, p) for s, p in statements if "inbox_count" in s]
    assert len(counted) == len(queries.INBOX_STATUSES) * len(FILTERS)  # one statement each
    assert [s for s, _ in statements if s not in {c for c, _ in counted}] == ["BEGIN IMMEDIATE"]
    with console.store.engine.connect() as connection:
        for statement, parameters in counted:
            plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            searches = [step for step in plan if not step.startswith("SCALAR SUBQUERY")
                        and step != "SCAN CONSTANT ROW"]  # the overdue's select of its three subqueries
            overdue = "inbox_entry" in statement
            assert len(searches) == (3 if overdue else 1), (statement, plan)
            assert re.match(r"SEARCH inbox_count USING (COVERING )?INDEX \w+ \(agency=\?", searches[0]), plan
            for step in searches[1:]:  # the open entries due from now, and those without a due time
                assert re.match(r"SEARCH \w+ USING (COVERING )?INDEX ix_inbox_entry_status_due "
                                r"\(agency=\? AND status=\? AND due_at(>|=)\?\)", step), plan


# Revision 0009: the fill, and the downgrade --------------------------------------------------------------------

def _triggers(connection) -> list[str]:
    if connection.dialect.name == "postgresql":
        found = connection.execute(text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'inbox_entry'::regclass "
                                        "AND NOT tgisinternal")).scalars().all()
        if connection.execute(text("SELECT to_regprocedure('inbox_count_keep()')")).scalar() is not None:
            found.append("function inbox_count_keep")
        return sorted(found)
    return sorted(connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                          "AND tbl_name = 'inbox_entry'")).scalars())


def test_the_revision_fills_the_counts_from_the_stored_entries_and_its_downgrade_takes_table_and_triggers(console):
    """At revision 0008 (the counts' table and triggers gone) entries are written, deleted and changed; the
    upgrade fills the counts from them (the triggers' groups exactly), and the triggers keep them after."""
    from alembic import command

    from gateway.store import schema

    _vary(console)
    with console.store.engine.connect() as connection:
        kept_by_triggers = counts_of(connection)
        triggers = _triggers(connection)
    assert kept_by_triggers and len(triggers) >= 2
    for changes_at_0008 in (False, True):
        with console.store.engine.begin() as connection:
            command.downgrade(schema.alembic_config(connection), "0008_inbox_entry")
        with console.store.engine.connect() as connection:
            assert "inbox_count" not in inspect(connection).get_table_names()
            assert _triggers(connection) == []
        if changes_at_0008:  # writes the counts do not see
            with console.store.engine.begin() as connection:
                ids = connection.execute(select(_D.c.id).where(_D.c.destination == HAMPSHIRE)
                                         .order_by(_D.c.id)).scalars().all()
                connection.execute(delete(_D).where(_D.c.id.in_(ids[:4])))  # the entries go by the cascade
                met = connection.execute(select(_DL.c.message_id).where(_DL.c.met_at.is_(None))
                                         .order_by(_DL.c.id).limit(5)).scalars().all()
                connection.execute(update(_DL).where(_DL.c.message_id.in_(met)).values(met_at=NOW))
                inbox.refresh(connection, message_ids=met)
        assert schema.upgrade(console.store.engine) == schema.head()
        with console.store.engine.connect() as connection:
            assert _triggers(connection) == triggers
            assert set(connection.execute(select(_COUNT.c.slot)).scalars()) == {0}
            filled = assert_counts_in_step(connection)
        if not changes_at_0008:
            assert filled == kept_by_triggers
        else:
            assert filled != kept_by_triggers
    assert_in_step(console.store)
    with console.store.engine.begin() as connection:  # the triggers are back
        connection.execute(delete(_D).where(_D.c.destination == OTHER_LA))
    assert_in_step(console.store)


# PostgreSQL: concurrent writers ----------------------------------------------------------------------------------

def _add(connection, original: dict, *, alert: bool = False) -> str:
    """A copy of ``original`` (a delivery) and its entry, as add_delivery makes them; an alert when ``alert``."""
    delivery_id = str(uuid.uuid4())
    connection.execute(insert(_D), {**original, "id": delivery_id, "payload_message_id": f"copy-{delivery_id}",
                                    **({"kind": KIND_BUILT, "rule": ALERT_RULE} if alert else {})})
    assert inbox.refresh(connection, [delivery_id]) == 1
    return delivery_id


def _original(console) -> dict:
    console.family_a()
    with console.store.engine.connect() as connection:
        return dict(connection.execute(select(_D).where(_D.c.rule == "school-referral-to-home-la")).mappings().one())


def _all_at_once(work, barrier: threading.Barrier) -> None:
    """Run ``work(n)`` for each party of ``barrier``, each in a thread of its own, and wait for them; a failure
    breaks the barrier for the others and is raised here."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(barrier.parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads), "a writer did not finish"


def _wide_engine(console):
    """An engine on the console's database with a connection for every slot and one more (the store's has 30)."""
    from sqlalchemy import create_engine

    return create_engine(console.store.engine.url, pool_size=INBOX_COUNT_SLOTS + 2, max_overflow=0)


def _slots(console) -> set[int]:
    with console.store.engine.connect() as connection:
        return set(connection.execute(select(_COUNT.c.slot).where(_COUNT.c.n != 0)).scalars())


@pytest.mark.postgres
@pytest.mark.parametrize("console", ["postgres"], indirect=True)
def test_two_writers_of_one_agency_count_in_slots_of_their_own_and_neither_waits_for_the_other(console):
    """A transaction adds entries to Hampshire's inbox and stays open; a second one adds entries of the same
    groups and commits without waiting for the first (its counts are in another slot); then the first commits.
    Both counts are there: no update is lost."""
    original = _original(console)
    before = _in_step(console)
    first = console.store.engine.connect()
    try:
        first.begin()
        _add(first, original)
        _add(first, original, alert=True)
        done = threading.Event()

        def second():
            with console.store.engine.begin() as connection:
                _add(connection, original, alert=True)
                _add(connection, original)
            done.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert done.wait(10), "the second writer waited for the first"
        thread.join()
        first.commit()
    finally:
        first.close()
    after = _in_step(console)
    assert sum(after.values()) == sum(before.values()) + 4
    assert len(_slots(console)) >= 2


@pytest.mark.postgres
@pytest.mark.parametrize("console", ["postgres"], indirect=True)
def test_a_writer_per_slot_taking_groups_in_opposite_orders_all_commit_with_the_right_counts(console):
    """A transaction per slot at once (32), each adding to two groups of one agency in its own order, all past
    the first before any goes on to the second (a barrier): with count rows shared between writers, two taking
    the rows in opposite orders would deadlock. Then deletes, by the delivery's cascade, the same way. All commit,
    and the counts are the entries'."""
    original = _original(console)
    before = sum(_in_step(console).values())
    engine = _wide_engine(console)
    barrier = threading.Barrier(INBOX_COUNT_SLOTS, timeout=30)
    made: list[str] = []

    def writer(n: int) -> None:
        order = (False, True) if n % 2 else (True, False)
        with engine.begin() as connection:
            ids = [_add(connection, original, alert=order[0])]
            barrier.wait()
            ids.append(_add(connection, original, alert=order[1]))
            barrier.wait()
        made.extend(ids)

    _all_at_once(writer, barrier)
    assert sum(_in_step(console).values()) == before + 2 * INBOX_COUNT_SLOTS
    random.Random(7).shuffle(made)

    def deleter(n: int) -> None:
        mine = made[n::INBOX_COUNT_SLOTS]
        with engine.begin() as connection:
            for delivery_id in (mine if n % 2 else mine[::-1]):
                connection.execute(delete(_D).where(_D.c.id == delivery_id))
                barrier.wait()

    barrier.reset()
    _all_at_once(deleter, barrier)
    assert sum(_in_step(console).values()) == before
    assert_in_step(console.store)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("console", ["postgres"], indirect=True)
def test_a_writer_past_the_slots_waits_for_one_and_then_counts_right(console):
    """Open transactions hold every slot (32); one more writer waits (for the slot its transaction id
    names) until they commit, then counts."""
    original = _original(console)
    before = sum(_in_step(console).values())
    engine = _wide_engine(console)
    holders = [engine.connect() for _ in range(INBOX_COUNT_SLOTS)]
    try:
        for connection in holders:
            connection.begin()
            _add(connection, original)
        done = threading.Event()

        def one_more():
            with engine.begin() as connection:
                _add(connection, original, alert=True)
            done.set()

        thread = threading.Thread(target=one_more)
        thread.start()
        assert not done.wait(1), "every slot is held: the writer waits"
        for connection in holders:
            connection.commit()
        assert done.wait(10)
        thread.join()
    finally:
        for connection in holders:
            connection.close()
        engine.dispose()
    assert sum(_in_step(console).values()) == before + INBOX_COUNT_SLOTS + 1
    assert _slots(console) == set(range(INBOX_COUNT_SLOTS))
