"""The inbox's queries: pages that join up into the whole inbox in order, read through the inbox's indexes."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from gateway.web.console import queries
from tests.shared_console import HAMPSHIRE, REFERRAL_DAY

NOW = REFERRAL_DAY + dt.timedelta(days=3)
ORDERS = [{"sort": sort, "order": order} for sort in queries.INBOX_SORTS for order in ("asc", "desc")]


def _inbox(console, page_size: int, **args) -> dict:
    with console.store.engine.connect() as connection:
        query = queries.InboxQuery.parse({k: str(v) for k, v in args.items()})
        return queries.inbox(connection, HAMPSHIRE, query, now=NOW, page_size=page_size)


def _key(row: dict) -> tuple:
    return row["delivery_id"], row["due_at"]


@pytest.mark.parametrize("args", ORDERS + [{"status": "overdue"}, {"status": "open", "order": "desc"},
                                           {"kind": "safeguarding-alert"}, {"risk": "high", "sort": "received"}])
def test_pages_of_two_join_up_into_the_whole_inbox_in_its_order(console, args):
    console.family_a()
    whole = _inbox(console, 100, **args)
    assert whole["total"] == len(whole["rows"]) and whole["pages"] == 1
    pages = [_inbox(console, 2, page=n, **args) for n in range(1, len(whole["rows"]) // 2 + 2)]
    assert [_key(r) for p in pages for r in p["rows"]] == [_key(r) for r in whole["rows"]], args
    assert all(p["total"] == whole["total"] and p["pages"] == max(1, -(-whole["total"] // 2)) for p in pages)


def test_due_order_puts_rows_without_a_due_time_last_either_way_newest_first(console):
    console.family_a()
    for order in ("asc", "desc"):
        rows = _inbox(console, 100, sort="due", order=order)["rows"]
        dues = [r["due_at"] for r in rows]
        dated = [d for d in dues if d is not None]
        assert dated and None in dues, "Family A has rows with a due time and rows without one"
        assert dues[:len(dated)] == sorted(dated, reverse=order == "desc")
        undated = [r["received_at"] for r in rows[len(dated):]]
        assert undated == sorted(undated, reverse=True)


@pytest.mark.parametrize("console", ["sqlite"], indirect=True)
def test_the_default_inbox_page_walks_the_inbox_indexes_and_scans_no_table(console):
    """SQLite plans without statistics: the planner must still walk the deadline index in due order to the
    page's end, find each delivery by its message through its covering index, and scan no table (a scan per
    row of a join was 50 seconds at 10,000 messages)."""
    console.family_a()
    statements = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(console.store.engine, "before_cursor_execute", capture)
    try:
        for args in ({}, {"sort": "received"}, {"status": "overdue", "sort": "risk"}):
            _inbox(console, 50, **args)
    finally:
        event.remove(console.store.engine, "before_cursor_execute", capture)
    plans = []
    with console.store.engine.connect() as connection:
        for statement, parameters in statements:
            plans.append([row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                       parameters)])
    details = [line for plan in plans for line in plan]
    assert not [line for line in details if line.startswith("SCAN")], plans
    assert any("ix_deadline_inbox_due" in line for line in details), plans
    assert any("ix_delivery_inbox_message (destination=? AND message_id=? AND kind=?)" in line
               for line in details), plans
    assert any("ix_delivery_inbox_received" in line for line in details), plans


def test_the_inbox_shows_the_completeness_stored_at_acceptance_and_reads_older_messages_responses(console):
    """Each accepted message keeps its completeness score beside its response (revision 0007); a message accepted
    before that has none stored, and the inbox reads its score from its response instead."""
    from sqlalchemy import update

    from gateway.store.models import AcceptedMessageRow

    console.family_a()
    accepted = AcceptedMessageRow.__table__
    stored = {r.message_id: r.completeness for r in console.rows(accepted)}
    from_response = {r.message_id: queries._completeness(r.response_body) for r in console.rows(accepted)}
    assert stored == from_response and any(score is not None for score in stored.values())
    before = [(r["message_id"], r["completeness"]) for r in _inbox(console, 100)["rows"]]
    assert any(score is not None for _, score in before)
    assert all(score == stored[mid] for mid, score in before if score is not None)
    with console.store.engine.begin() as connection:  # as a message accepted before revision 0007 is
        connection.execute(update(accepted).values(completeness=None))
    assert [(r["message_id"], r["completeness"]) for r in _inbox(console, 100)["rows"]] == before


@pytest.mark.parametrize("args", [{}, {"status": "overdue"}, {"status": "open"}, {"risk": "high"}, {"risk": "none"}])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_the_risk_order_walks_level_by_level_to_the_order_one_sort_would_give(console, args, order):
    """Sorted by risk the page is read level by level; every page must be the slice of one whole ordering:
    high, medium, standard, low, then none or another value (reversed for desc), each newest first."""
    from gateway.linkage.models import MessageEventRow

    console.family_a()
    events = MessageEventRow.__table__
    with console.store.engine.begin() as connection:  # every level present, one twice, one unknown value
        ids = [r.message_id for r in connection.execute(events.select().order_by(events.c.message_id))]
        for n, message_id in enumerate(ids):
            risk = ("high", "medium", None, "standard", "low", "severe", "high")[n % 7]
            connection.execute(events.update().where(events.c.message_id == message_id).values(risk=risk))
    whole = _inbox(console, 100, sort="risk", order=order, **args)["rows"]
    rank = {level: n for n, level in enumerate(queries.RISK_ORDER)}

    def level(row):
        n = rank.get(row["risk"], len(rank))
        return -n if order == "desc" else n
    expected = sorted(whole, key=lambda r: (r["delivery_id"]))  # a deterministic start, then the order
    expected.sort(key=lambda r: r["received_at"], reverse=True)
    expected.sort(key=level)
    assert [_key(r) for r in whole] == [_key(r) for r in expected]
    for size in (1, 2, 3):
        pages = [_inbox(console, size, sort="risk", order=order, page=n, **args)["rows"]
                 for n in range(1, len(whole) // size + 2)]
        assert [_key(r) for p in pages for r in p] == [_key(r) for r in whole], size
