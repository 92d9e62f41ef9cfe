"""The inbox read model: one ``inbox_entry`` row per delivery an agency's inbox lists (revision 0008).

The console's inbox (:func:`gateway.web.console.queries.inbox`) sorts, filters and counts an agency's
deliveries by columns of four tables (the delivery, its message's event, its accepted message and its inbox
deadline); joined at each request, a page cost a pass over the agency's deliveries. Each entry holds those
columns, so a page is one walk of one index of ``inbox_entry`` and a count one range of one.

:func:`refresh` is the one definition of what an entry holds: it (re)builds the entries of given deliveries,
or of every delivery of given messages, from those tables. Every write the inbox shows calls it in the same
transaction: a delivery added (:meth:`gateway.delivery.services.SqlOutbox.add_delivery`), its state changed
(:func:`refresh_states`), its message's event and deadlines made or met (:mod:`gateway.linkage.services`),
its child relinked (:mod:`gateway.linkage.index`). An entry goes with its delivery (a foreign key: the
retention purge follows it, and ``ON DELETE CASCADE``).

Concurrent writers (PostgreSQL, read committed): every writer of an entry holds its delivery's row lock first.
A state change updates the delivery row before the entry; :func:`refresh` locks the delivery rows (``FOR NO
KEY UPDATE``, in id order) and only then reads the tables, in a statement of its own that sees every change
committed before it got the lock. Without the lock a refresh that read a delivery's state just before a worker
committed a new one would write the old state over it, and two refreshes of one delivery would both insert
its entry. (SQLite runs one writer at a time.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from gateway.delivery.models import (
    INBOX_DECIDED,
    INBOX_OPEN,
    KIND_BUILT,
    KIND_MESSAGE,
    DeliveryRow,
    InboxEntryRow,
)
from gateway.linkage import deadlines as D
from gateway.linkage.models import DeadlineRow, MessageEventRow
from gateway.model import systems as S
from gateway.routing.codes import DEADLINE_RULE_PREFIX, ENCOMPASS_RULES, ESCALATION_RULE_PREFIX
from gateway.store.models import AcceptedMessageRow
from gateway.store.services import at_commit

_D = DeliveryRow.__table__
_E = MessageEventRow.__table__
_DL = DeadlineRow.__table__
_A = AcceptedMessageRow.__table__
_ENTRY = InboxEntryRow.__table__

#: The kinds of delivery the inbox lists: routed messages and the gateway's own (alerts, reminders).
INBOX_KINDS = (KIND_MESSAGE, KIND_BUILT)
#: The deadline an inbox row shows: the agency's decision (or Operation Encompass) deadline of the message.
INBOX_DEADLINES = (D.DEADLINE_DECISION, D.DEADLINE_ENCOMPASS)
#: Risk levels in the inbox's order; none, or another value, comes after them (rank ``len(RISK_ORDER)``).
RISK_ORDER = {"high": 0, "medium": 1, "standard": 2, "low": 3}
NO_RISK_RANK = len(RISK_ORDER)
#: What a delivery of the gateway's own is, by its routing rule: (prefix, event), first match wins.
RULE_KINDS = ((ESCALATION_RULE_PREFIX, S.EVENT_ALERT), (DEADLINE_RULE_PREFIX, S.EVENT_OVERDUE))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_BATCH = 500


def kind_of(rule: str | None, event_kind: str | None) -> str | None:
    """The event of what was delivered: an alert or reminder is its own; else the accepted message's (an
    Operation Encompass notification made from a notice is an Operation Encompass notification)."""
    for prefix, kind in RULE_KINDS:
        if rule and rule.startswith(prefix):
            return kind
    return S.EVENT_ENCOMPASS if rule in ENCOMPASS_RULES else event_kind


def risk_rank(risk: str | None) -> int:
    return RISK_ORDER.get(risk, NO_RISK_RANK) if risk is not None else NO_RISK_RANK


def received_rev(received_at: dt.datetime) -> int:
    """``received_at`` as a number that sorts the other way: minus microseconds since 1970."""
    return -((received_at - _EPOCH) // dt.timedelta(microseconds=1))


def _source(where):
    """The entries' source rows: each listed delivery with its accepted message, its event (if any) and its
    inbox deadline (if any; for a message the gateway made about an accepted one, an alert or a reminder,
    none: the accepted message's deadline is not its deadline). Should two inbox deadlines of one agency
    name one message, the first made is the row's."""
    other = _DL.alias("inbox_deadline")
    first_deadline = (select(func.min(other.c.id))
                      .where(other.c.message_id == _D.c.message_id, other.c.agency == _D.c.destination,
                             other.c.kind.in_(INBOX_DEADLINES))
                      .correlate(_D).scalar_subquery())
    return (select(_D.c.id, _D.c.destination, _D.c.message_id, _D.c.created_at, _D.c.state, _D.c.rule,
                   _E.c.message_id.label("event"), _E.c.kind, _E.c.sender_agency, _E.c.risk, _E.c.categories,
                   _E.c.late_days, _E.c.version, _E.c.child_person_id, _A.c.completeness,
                   _DL.c.id.label("deadline_id"), _DL.c.due_at, _DL.c.met_at)
            .select_from(_D.join(_A, _A.c.message_id == _D.c.message_id)
                         .outerjoin(_E, _E.c.message_id == _D.c.message_id)
                         .outerjoin(_DL, and_(_D.c.kind == KIND_MESSAGE, _DL.c.id == first_deadline)))
            .where(_D.c.kind.in_(INBOX_KINDS), where))


def entry_of(row) -> dict:
    """The ``inbox_entry`` values of one source row (:func:`_source`)."""
    event = row.event is not None
    status = None
    if row.deadline_id is not None:
        status = INBOX_OPEN if row.met_at is None else INBOX_DECIDED
    return {
        "delivery_id": row.id, "agency": row.destination, "message_id": row.message_id,
        "received_at": row.created_at, "received_rev": received_rev(row.created_at), "state": row.state,
        "kind": kind_of(row.rule, row.kind if event else None), "has_event": event,
        "sender": row.sender_agency, "risk": row.risk, "risk_rank": risk_rank(row.risk),
        "categories": row.categories, "late_days": row.late_days, "version": row.version,
        "child_person_id": row.child_person_id, "completeness": row.completeness,
        "deadline_id": row.deadline_id, "due_at": row.due_at, "met_at": row.met_at, "status": status,
    }


def _chunks(values: list, size: int = _BATCH) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# The statements of a refresh, built once (building and keying them cost more than running them), by delivery
# ids and by message ids (``b_keys``).
_KEYS = bindparam("b_keys", expanding=True)
_BY = {
    "id": (select(_D.c.id).where(_D.c.id.in_(_KEYS)).order_by(_D.c.id).with_for_update(key_share=True),
           _source(_D.c.id.in_(_KEYS)),
           delete(_ENTRY).where(_ENTRY.c.delivery_id.in_(_KEYS))),
    "message": (select(_D.c.id).where(_D.c.message_id.in_(_KEYS)).order_by(_D.c.id).with_for_update(key_share=True),
                _source(_D.c.message_id.in_(_KEYS)),
                delete(_ENTRY).where(_ENTRY.c.delivery_id.in_(select(_D.c.id).where(_D.c.message_id.in_(_KEYS))))),
}
_INSERT = insert(_ENTRY)


def refresh(connection: Connection, delivery_ids: Iterable[str] = (), *, message_ids: Iterable[str] = ()) -> int:
    """(Re)build the inbox entries of ``delivery_ids`` and of every delivery of ``message_ids`` from the
    tables they copy, in ``connection``'s transaction; return how many entries there now are of them.

    A delivery the inbox does not list (a fatal-error notice), or one that is gone, is left without one.
    """
    written = 0
    locking = connection.dialect.name == "postgresql"
    for by, values in (("id", list(dict.fromkeys(delivery_ids))), ("message", list(dict.fromkeys(message_ids)))):
        lock, source, remove = _BY[by]
        for chunk in _chunks(values):
            params = {"b_keys": chunk}
            if locking:  # see the module docstring: one writer of a delivery's entry at a time
                connection.execute(lock, params).all()
            rows = [entry_of(r) for r in connection.execute(source, params)]
            connection.execute(remove, params)
            if rows:
                connection.execute(_INSERT, rows)
            written += len(rows)
    return written


#: ``session.info`` key of the entries a store transaction builds at its end (:func:`refresh_at_commit`): the
#: deliveries (id: message id) and the messages.
_PENDING = "gateway_inbox_pending"


def refresh_at_commit(session, delivery_ids: dict[str, str] | None = None, *, message_ids: Iterable[str] = ()) -> None:
    """:func:`refresh` the entries of ``delivery_ids`` (id: its message's id) and of every delivery of
    ``message_ids``, once, at the end of ``session``'s store transaction (gateway.store.services.at_commit),
    however many writes of it ask: the accept path adds a message's deliveries, then its event and deadlines,
    and each entry is built once, from the final rows. In a session that is no store transaction's, at once."""
    pending = session.info.get(_PENDING)
    if pending is None:
        if not at_commit(session, _PENDING, _refresh_pending):
            refresh(session.connection(), list(delivery_ids or ()), message_ids=message_ids)
            return
        pending = session.info[_PENDING] = ({}, {})
    pending[0].update(delivery_ids or {})
    pending[1].update(dict.fromkeys(message_ids))


def _refresh_pending(session) -> None:
    deliveries, messages = session.info.pop(_PENDING, ({}, {}))
    # A delivery of a message refreshed whole is built with it, not twice.
    refresh(session.connection(), [d for d, message in deliveries.items() if message not in messages],
            message_ids=list(messages))


def refresh_all(connection: Connection) -> int:
    """Build every entry again from the tables (a repair; revision 0008 fills the table the same way)."""
    connection.execute(delete(_ENTRY))
    ids = list(connection.execute(select(_D.c.id).where(_D.c.kind.in_(INBOX_KINDS)).order_by(_D.c.id)).scalars())
    return refresh(connection, ids)


#: A delivery's state copied to its entry (an executemany over ``b_id``): the worker's claims and outcomes
#: change only the state, and this costs one small UPDATE where :func:`refresh` reads four tables.
_STATE = (update(_ENTRY).where(_ENTRY.c.delivery_id == bindparam("b_id"))
          .values(state=select(_D.c.state).where(_D.c.id == _ENTRY.c.delivery_id).scalar_subquery()))


def refresh_states(connection: Connection, delivery_ids: Iterable[str]) -> None:
    """Copy the state of each of ``delivery_ids`` (written already, flushed) to its inbox entry, if it has one."""
    params = [{"b_id": delivery_id} for delivery_id in dict.fromkeys(delivery_ids)]
    if params:
        connection.execute(_STATE, params)
