"""The inbox's queries: pages that join up into the whole inbox in order, read through the indexes of its read model."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
from sqlalchemy import event

from gateway.delivery import inbox as inbox_model
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
def test_every_inbox_page_and_count_walks_one_range_of_one_inbox_entry_index_and_sorts_nothing_whole(console):
    """SQLite plans without statistics and is told the index of each order (INDEXED BY): each page and count
    reads one range of one index of inbox_entry (agency first), scans no table, sorts no whole range (only the
    ties of a received or due time walked backwards: the right part of the order), and joins nothing: the
    source tables of the entries are not read."""
    console.family_a()
    statements = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(console.store.engine, "before_cursor_execute", capture)
    try:
        for sort, order, status, filters, page in itertools.product(
                queries.INBOX_SORTS, ("asc", "desc"), queries.INBOX_STATUSES,
                ({}, {"kind": "safeguarding-alert"}, {"risk": "high"}, {"risk": "severe"}), ("1", "2")):
            _inbox(console, 2, sort=sort, order=order, status=status, page=page, **filters)
    finally:
        event.remove(console.store.engine, "before_cursor_execute", capture)
    read = {statement for statement, _ in statements}
    assert not [s for s in read if any(f"FROM {t}" in s or f"JOIN {t}" in s for t in (
        "delivery", "deadline", "message_event"))], "the inbox reads its entries, not the tables they copy"
    with console.store.engine.connect() as connection:
        for statement, parameters in statements:
            if "inbox_entry" not in statement or "inbox_count" in statement:
                continue  # the count's statement: its ranges are held in test_inbox_count.py
            plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert len([line for line in plan if line.startswith("SEARCH")]) == 1, (statement, plan)
            assert re.match(r"SEARCH \w+ USING (COVERING )?INDEX ix_inbox_entry_\w+ \(agency=\?", plan[0]), plan
            assert not [line for line in plan if line.startswith("SCAN") or line.endswith("FOR ORDER BY")], plan


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
        inbox_model.refresh_all(connection)  # (and its inbox entry, made by revision 0008)
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
        inbox_model.refresh(connection, message_ids=ids)
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


@pytest.mark.parametrize("size", [0, 1, 2, 50, 1000])
def test_among_selects_what_in_a_list_selects_on_each_engine(console, size):
    """``among`` (PostgreSQL: ``= ANY`` of one array parameter) selects the rows ``IN`` a list selects,
    for no value, one, a few and a thousand, with values quoted in SQL, unknown ones and repeats."""
    from sqlalchemy import select

    from gateway.store.engine import among
    from gateway.store.models import AcceptedMessageRow

    console.family_a()
    table = AcceptedMessageRow.__table__
    known = [r.message_id for r in console.rows(table)]
    odd = ["it's \"quoted\"", "back\\slash", "", "urn:uuid:0000", *known[:1]]
    values = (known + odd + [f"urn:uuid:none-{n}" for n in range(size)])[:size]
    with console.store.engine.connect() as connection:
        def ids(condition):
            return sorted(connection.execute(select(table.c.message_id).where(condition)).scalars())
        assert ids(among(connection, table.c.message_id, values)) == ids(table.c.message_id.in_(values))
        assert ids(among(connection, table.c.message_id, values)) == sorted(set(known) & set(values))
    if size >= 2:
        assert set(known) & set(values)  # the values select some rows, not none
