"""Appending to the hash chain, and walking it to prove nothing was edited, deleted, inserted or reordered.

Each record's ``hash`` is SHA-256 over the previous record's hash (32 raw
bytes; 32 zero bytes before the first record) followed by the RFC 8785
canonical JSON of the record (:func:`canonical_record`). Sequence numbers
start at 1 and have no gaps. The sequence number is not part of the hashed
form: the order is carried by the links (``prev_hash``), so a record moved to
another place in the chain shows as out of order, not as edited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring

from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from gateway.audit.models import AuditChainHeadRow, AuditEventRow
from gateway.signing.canonical import canonical_json

GENESIS = "0" * 64
#: AuditEvent.action codes (FHIR R4 audit-event-action).
ACTIONS = frozenset("CRUDE")
#: Outcomes a record may have, with their FHIR R4 AuditEvent.outcome codes.
OUTCOMES = {"success": "0", "failure": "4", "serious-failure": "8", "major-failure": "12"}
#: The gateway's audit subtypes (``docs/audit.md`` says which action writes each).
SUBTYPES = frozenset({
    "submission", "refusal", "translation", "validation", "routing", "delivery-attempt", "acknowledgement",
    "read", "decision", "link-confirmation", "configuration", "purge", "legal-hold", "key-rotation",
})

_EVENT = AuditEventRow.__table__
_HEAD = AuditChainHeadRow.__table__
_HEAD_ID = 1
# Core statements, compiled once: an append runs them on the accept path of every message.
_ADVANCE = (update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(seq=_HEAD.c.seq + bindparam("n"))
            .returning(_HEAD.c.seq, _HEAD.c.hash))
_SET_HASH = update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(hash=bindparam("new_hash"))
_INSERT = insert(_EVENT)


class AuditChainError(RuntimeError):
    """The audit chain cannot be appended to (its head row is missing: the database was not upgraded)."""


def format_recorded(at: dt.datetime) -> str:
    """Return ``at`` as the record's canonical UTC time, to the microsecond (what both engines keep)."""
    if at.tzinfo is None:
        raise ValueError("audit records take aware datetimes only")
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_record(*, recorded: str, action: str, subtype: str, outcome: str, agent: str,
                     entities: list, detail: dict | None) -> bytes:
    """Return the RFC 8785 canonical JSON of one record's content (what its hash covers)."""
    return canonical_json({"recorded": recorded, "action": action, "subtype": subtype, "outcome": outcome,
                           "agent": agent, "entities": entities, "detail": detail})


# A JSON string as RFC 8785 writes it: UTF-8 as is, only '"', '\\' and control characters escaped (the short
# forms, else lowercase \u00xx); which is what the json module's encoder does with ensure_ascii off (in C).
_json_string = encode_basestring


def canonical_from_columns(recorded: str, action: str, subtype: str, outcome: str, agent: str, entities: str,
                           detail: str | None) -> bytes:
    """Return :func:`canonical_record` of a record from its stored columns, without parsing them.

    ``entities`` and ``detail`` are stored as their own RFC 8785 JSON, which
    is exactly how they appear inside the record's; so the record's
    canonical form is the columns put together in JCS key order. The
    writer builds it the same way (one form for both), and the tests check
    it against the rfc8785 library for every kind of value. A column
    edited to other JSON (even with the same meaning) no longer fits its hash.
    """
    return (f'{{"action":{_json_string(action)},"agent":{_json_string(agent)},"detail":'
            f'{"null" if detail is None else detail},"entities":{entities},"outcome":{_json_string(outcome)},'
            f'"recorded":{_json_string(recorded)},"subtype":{_json_string(subtype)}}}'
            ).encode("utf-8")


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """Return the hex SHA-256 of ``prev_hash`` (hex, as raw bytes) followed by ``canonical``."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def _connection(session_or_connection: Session | Connection) -> Connection:
    if isinstance(session_or_connection, Session):
        return session_or_connection.connection()
    return session_or_connection


#: ``session.info`` key of the records a transaction of the store waits to append at its end (see
#: :func:`defer_audit`).
PENDING = "gateway_audit_pending"


def record_audit(session_or_connection: Session | Connection, *, action: str, subtype: str,
                 outcome: str = "success", agent: str, entities: Iterable[tuple[str, object]] = (),
                 detail: dict | None = None, at: dt.datetime) -> int | None:
    """Append one audit record in the caller's transaction; return its sequence number when written now.

    ``action`` is the AuditEvent action (C R U D E), ``subtype`` one of
    :data:`SUBTYPES`, ``outcome`` one of :data:`OUTCOMES`, ``agent`` who
    acted (an agency URI, ``"gateway"`` or an operator's name), ``entities``
    ``(kind, id)`` pairs of what it acted on, ``detail`` a JSON object of
    codes. Only ids and codes: never names, narratives or NHS numbers.

    Appending locks the chain's head row until the transaction ends, so
    transactions that audit are ordered one after another. In a transaction
    of the store (:meth:`gateway.store.SqlMessageStore.transaction`, and the
    accept path's group commit) the record waits and is appended with the
    transaction's others just before it commits (:func:`defer_audit`), so
    the head is locked only for the commit; it then returns ``None``. On any
    other session or connection it is appended at once: call it last there.
    Also ``None`` when the audit log is switched off (``audit_log = "off"``,
    the benchmark's baseline). Raises :class:`ValueError` for an unknown
    action, subtype or outcome or a naive ``at``, and
    :class:`AuditChainError` when the database has no chain head.
    """
    from gateway.audit import enabled

    if action not in ACTIONS or len(action) != 1:
        raise ValueError(f"audit action {action!r}: use one of C R U D E")
    if subtype not in SUBTYPES:
        raise ValueError(f"audit subtype {subtype!r}: use one of {', '.join(sorted(SUBTYPES))}")
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    recorded = format_recorded(at)
    if not enabled():
        return None
    pairs = [[str(kind), str(ident)] for kind, ident in entities if ident is not None]  # an absent id: no entity
    entities_text = canonical_json(pairs).decode("utf-8")
    detail_text = None if detail is None else canonical_json(detail).decode("utf-8")
    canonical = canonical_from_columns(recorded, action, subtype, outcome, agent, entities_text, detail_text)
    row = {"recorded_at": dt.datetime.fromisoformat(recorded), "action": action, "subtype": subtype,
           "outcome": outcome, "agent": agent, "entities": entities_text, "detail": detail_text}
    if isinstance(session_or_connection, Session):
        pending = session_or_connection.info.get(PENDING)
        if pending is not None:
            pending.append((row, canonical))
            return None
    return _append(_connection(session_or_connection), [(row, canonical)])


def _append(connection: Connection, records: list[tuple[dict, bytes]]) -> int:
    """Append ``records`` (rows without seq and hashes, and their canonical forms); return the last seq.

    Three statements however many records: move the head on by their
    number (which locks it), insert them all, set the head's hash.
    """
    head_row = connection.execute(_ADVANCE, {"n": len(records)}).first()
    if head_row is None:
        raise AuditChainError("the audit chain has no head row: run `gateway db upgrade`")
    last, prev_hash = head_row
    seq = last - len(records)
    rows = []
    for row, canonical in records:
        seq += 1
        new_hash = chain_hash(prev_hash, canonical)
        rows.append({**row, "seq": seq, "prev_hash": prev_hash, "hash": new_hash})
        prev_hash = new_hash
    connection.execute(_INSERT, rows)
    connection.execute(_SET_HASH, {"new_hash": prev_hash})
    return last


def defer_audit(session: Session) -> None:
    """Make ``session``'s transaction collect its audit records, to append them with :func:`write_deferred`."""
    session.info[PENDING] = []


def deferred_mark(session: Session) -> int:
    """Return how many records ``session`` holds back (a savepoint's start; see :func:`discard_deferred`)."""
    return len(session.info.get(PENDING) or ())


def discard_deferred(session: Session, mark: int) -> None:
    """Drop the records collected since ``mark``: their savepoint rolled back."""
    pending = session.info.get(PENDING)
    if pending is not None:
        del pending[mark:]


def write_deferred(session: Session) -> None:
    """Append the records ``session``'s transaction collected, in order, just before it commits."""
    pending = session.info.pop(PENDING, None)
    if pending:
        _append(session.connection(), pending)


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    """One row of ``audit_event`` as read back."""

    seq: int
    recorded_at: dt.datetime
    action: str
    subtype: str
    outcome: str
    agent: str
    entities: list
    detail: dict | None
    prev_hash: str
    hash: str

    def canonical(self) -> bytes:
        return canonical_record(recorded=format_recorded(self.recorded_at), action=self.action,
                                subtype=self.subtype, outcome=self.outcome, agent=self.agent,
                                entities=self.entities, detail=self.detail)


_COLUMNS = (_EVENT.c.seq, _EVENT.c.recorded_at, _EVENT.c.action, _EVENT.c.subtype, _EVENT.c.outcome,
            _EVENT.c.agent, _EVENT.c.entities, _EVENT.c.detail, _EVENT.c.prev_hash, _EVENT.c.hash)


def _stored(row) -> StoredRecord:
    return StoredRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                        None if row[7] is None else json.loads(row[7]), row[8], row[9])


def stored_records(connection: Connection, *, after: int = 0, since: dt.datetime | None = None,
                   batch: int = 20_000) -> Iterator[StoredRecord]:
    """Yield the records after sequence number ``after`` (and recorded at or after ``since``), in order.

    Reads in batches of ``batch`` rows by sequence number (keyset), so a
    chain of millions is walked in bounded memory.
    """
    query = select(*_COLUMNS).where(_EVENT.c.seq > bindparam("after")).order_by(_EVENT.c.seq).limit(batch)
    if since is not None:
        query = query.where(_EVENT.c.recorded_at >= since)
    while True:
        rows = connection.execute(query, {"after": after}).all()
        for row in rows:
            yield _stored(row)
        if len(rows) < batch:
            return
        after = rows[-1][0]


# The columns verify needs, ``recorded_at`` already in the canonical form (the database formats it: no
# datetime objects are made for a million rows). SQLAlchemy keeps SQLite's datetimes as
# "YYYY-MM-DD HH:MM:SS.ffffff" in UTC (gateway.store.models.UTCDateTime).
_RAW_RECORDED = {
    "sqlite": "replace(recorded_at, ' ', 'T') || 'Z'",
    "postgresql": """to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""",
}


def raw_records(connection: Connection, *, batch: int = 20_000) -> Iterator[tuple]:
    """Yield ``(seq, recorded, action, subtype, outcome, agent, entities, detail, prev_hash, hash)`` as
    stored, in order, read ``batch`` at a time (``recorded`` as in the canonical form): what ``gateway
    audit verify`` walks."""
    sql = (f"SELECT seq, {_RAW_RECORDED[connection.dialect.name]}, action, subtype, outcome, agent, entities, "
           "detail, prev_hash, hash FROM audit_event ORDER BY seq")
    # One query read as it streams (a server-side cursor on PostgreSQL, SQLite's own stepping), ``batch``
    # rows at a time: bounded memory, and no query per batch.
    result = connection.execution_options(stream_results=True, yield_per=batch).execute(text(sql))
    try:
        for rows in result.partitions(batch):
            yield from rows
    finally:  # a walk that stops early closes the server-side cursor at once
        result.close()


def head(connection: Connection) -> tuple[int, str] | None:
    """Return the chain head's ``(seq, hash)``, or ``None`` when the database has none."""
    row = connection.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == _HEAD_ID)).first()
    return None if row is None else (row[0], row[1])
