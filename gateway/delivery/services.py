"""The outbox on one SQLAlchemy session: enqueue, claim, finish, expire, mailbox, operator views.

Every method works inside the caller's transaction (``unit.session`` of
:meth:`gateway.store.SqlMessageStore.transaction`), so the accept step adds
deliveries in the accepting transaction and a worker's claim is one short
transaction of its own.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import json
import uuid
from collections.abc import Mapping

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, object_session

from gateway.audit import record_audit
from gateway.delivery import inbox
from gateway.delivery.inbox import INBOX_KINDS
from gateway.delivery.models import (
    ACKNOWLEDGED,
    DEAD_LETTERED,
    IN_FLIGHT,
    KIND_MESSAGE,
    MAILBOX,
    OPEN_STATES,
    PENDING,
    PUSH,
    DeliveryRow,
    UnroutableRow,
)
from gateway.store.models import AcceptedMessageRow, UTCDateTime


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A delivery as operators, senders and mailboxes see it (without its payload)."""

    id: str
    message_id: str
    kind: str
    destination: str
    mode: str
    endpoint: str | None
    rule: str | None
    payload_message_id: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    due_at: dt.datetime | None
    expires_at: dt.datetime
    last_error: str | None
    claimed_by: str | None
    lease_until: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    acknowledged_at: dt.datetime | None
    dead_lettered_at: dt.datetime | None

    def overdue(self, now: dt.datetime) -> bool:
        """Return whether it has a due time that passed before it was acknowledged (or by ``now``)."""
        if self.due_at is None:
            return False
        return (self.acknowledged_at or now) > self.due_at


@dataclasses.dataclass(frozen=True)
class Claim:
    """A push delivery a worker holds until ``lease_until``; ``token`` fences a lapsed claim."""

    id: str
    token: str
    message_id: str
    kind: str
    destination: str
    endpoint: str
    payload: str
    payload_message_id: str
    payload_header_id: str
    attempts: int
    expires_at: dt.datetime
    lease_until: dt.datetime
    due_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class UnroutableEntry:
    """A message held because routing found no destination for it."""

    id: str
    message_id: str
    sender_agency: str
    rule: str | None
    reason: str
    created_at: dt.datetime
    resolved: bool
    resolved_at: dt.datetime | None
    resolution: str | None


_DELIVERY = DeliveryRow.__table__
_DELIVERY_FIELDS = [f.name for f in dataclasses.fields(Delivery)]
_NOW = bindparam("b_now", type_=UTCDateTime())  # the time every statement below is run at


def _acknowledged(now) -> dict:
    """What an acknowledgement sets on a delivery: one definition for the worker's fenced UPDATE
    (``now`` a bind parameter) and a mailbox ``$ack`` (:func:`acknowledge`, ``now`` a datetime)."""
    return {"state": ACKNOWLEDGED, "acknowledged_at": now, "updated_at": now, "claim_token": None,
            "lease_until": None}


_ACKNOWLEDGE = (_DELIVERY.update()
                .where(_DELIVERY.c.id == bindparam("b_id"), _DELIVERY.c.state == IN_FLIGHT,
                       _DELIVERY.c.claim_token == bindparam("b_token"))
                .values(_acknowledged(_NOW)))
_CLAIM = (_DELIVERY.update()
          .where(_DELIVERY.c.id == bindparam("b_id"))
          .values(state=IN_FLIGHT, claimed_by=bindparam("b_worker"), claim_token=bindparam("b_token"),
                  lease_until=bindparam("b_lease", type_=UTCDateTime()), attempts=bindparam("b_attempts"),
                  updated_at=_NOW, last_error=bindparam("b_error")))
# A claimable delivery: an open push delivery whose attempt is due, or whose worker's lease ran out,
# and that has not expired (at :b_now). Built once: workers ask every round.
_DUE = (_DELIVERY.c.mode == PUSH, _DELIVERY.c.state.in_(OPEN_STATES),
        or_(and_(_DELIVERY.c.state == PENDING, _DELIVERY.c.next_attempt_at <= _NOW),
            and_(_DELIVERY.c.state == IN_FLIGHT, _DELIVERY.c.lease_until <= _NOW)),
        _DELIVERY.c.expires_at > _NOW)
_ANY_DUE = select(_DELIVERY.c.id).where(*_DUE).limit(1)
_ANY_DUE_WITH_ROOM = _ANY_DUE.where(_DELIVERY.c.destination.not_in(bindparam("b_full", expanding=True)))
# A heartbeat: a live worker extends its claim, fenced by the claim token like an acknowledgement.
_RENEW = (_DELIVERY.update()
          .where(_DELIVERY.c.id == bindparam("b_id"), _DELIVERY.c.state == IN_FLIGHT,
                 _DELIVERY.c.claim_token == bindparam("b_token"))
          .values(lease_until=bindparam("b_lease", type_=UTCDateTime())))
# Enqueueing, per dialect, built once: a destination's second delivery of a message id adds nothing.
_ADD = {name: dialect.insert(_DELIVERY).on_conflict_do_nothing(index_elements=["destination", "payload_message_id"])
        for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
_UNROUTABLE_FIELDS = [f.name for f in dataclasses.fields(UnroutableEntry)]


def _delivery(row: DeliveryRow) -> Delivery:
    return Delivery(**{name: getattr(row, name) for name in _DELIVERY_FIELDS})


def _unroutable(row: UnroutableRow) -> UnroutableEntry:
    return UnroutableEntry(**{name: getattr(row, name) for name in _UNROUTABLE_FIELDS})


class SqlOutbox:
    """The outbox tables through one session (one transaction)."""

    def __init__(self, session: Session):
        self.session = session

    # Enqueueing ---------------------------------------------------------------------------

    def add_delivery(self, *, message_id: str, destination: str, mode: str, endpoint: str | None,
                     payload: dict | str, payload_message_id: str, payload_header_id: str, now: dt.datetime,
                     expires_at: dt.datetime, rule: str | None = None, due_at: dt.datetime | None = None,
                     kind: str = KIND_MESSAGE) -> str | None:
        """Add a pending delivery (attempted from ``now``) and return its id.

        ``payload`` is the signed Bundle, or its JSON text when the caller
        already has it. Returns ``None``, adding nothing, when
        ``destination`` already has a delivery of ``payload_message_id``
        (a destination receives a message id once). One statement: an
        ``INSERT ... ON CONFLICT DO NOTHING`` on the unique constraint.
        """
        delivery_id = str(uuid.uuid4())
        values = dict(
            id=delivery_id, message_id=message_id, kind=kind, destination=destination, mode=mode,
            endpoint=endpoint if mode == PUSH else None, rule=rule,
            payload=payload if isinstance(payload, str) else json.dumps(payload),
            payload_message_id=payload_message_id, payload_header_id=payload_header_id, state=PENDING,
            attempts=0, next_attempt_at=now, due_at=due_at, expires_at=expires_at, created_at=now, updated_at=now)
        connection = self.session.connection()
        if connection.execute(_ADD[connection.dialect.name], values).rowcount != 1:
            return None
        if kind in INBOX_KINDS:  # built when the transaction ends, from its final rows (its event, its deadlines)
            inbox.refresh_at_commit(self.session, {delivery_id: message_id})
        return delivery_id

    def has_delivery(self, destination: str, payload_message_id: str) -> bool:
        """Return whether ``destination`` already has a delivery of this message id."""
        query = select(DeliveryRow.id).where(DeliveryRow.destination == destination,
                                             DeliveryRow.payload_message_id == payload_message_id)
        return self.session.scalar(query) is not None

    def add_unroutable(self, *, message_id: str, sender_agency: str, reason: str, now: dt.datetime,
                       rule: str | None = None) -> str:
        """Hold a message in the unroutable queue; return the entry's id."""
        entry_id = str(uuid.uuid4())
        self.session.add(UnroutableRow(id=entry_id, message_id=message_id, sender_agency=sender_agency, rule=rule,
                                       reason=reason, created_at=now, resolved=False))
        return entry_id

    # Workers --------------------------------------------------------------------------------

    def claim(self, *, now: dt.datetime, limit: int, worker: str, lease: dt.timedelta,
              per_destination: int | None = None, in_flight: Mapping[str, int] | None = None) -> list[Claim]:
        """Claim up to ``limit`` push deliveries due at ``now`` for ``worker``, until ``now + lease``.

        Due: pending with ``next_attempt_at <= now``, or in flight with a
        lease that ran out (its worker died); not yet expired. On PostgreSQL
        the rows are locked ``FOR UPDATE SKIP LOCKED``, so concurrent
        workers claim disjoint sets; on SQLite the engine's ``BEGIN
        IMMEDIATE`` serialises claims. Each claim counts as an attempt.

        With ``per_destination``, no destination gets more than that many
        of this worker's deliveries in flight (``in_flight``: how many it has
        now, per destination), so a hung or slow endpoint holds a few of its
        slots and the other agencies' deliveries go on. The cap is each
        worker's own, not counted in the database across workers: a killed
        worker's claims would otherwise hold their destinations' share until
        their lease ran out.
        """
        # Core statements (a select of the columns a claim needs, then one executemany UPDATE):
        # a worker claims every round, and the ORM's identity map and unit of work cost more than the SQL.
        connection = self.session.connection()
        claims: list[Claim] = []
        if per_destination is None:
            self._claim_rows(connection, _claim_query(limit), {"b_now": now}, claims, limit, None, worker,
                             now, lease)
            return claims
        room = collections.defaultdict(lambda: per_destination, {
            d: per_destination - n for d, n in (in_flight or {}).items()})
        # Due rows come oldest first, so one destination's backlog (a hung endpoint's) can fill a whole batch:
        # its first rows are claimed up to its room, then it is left out and the next batch is read. Each
        # batch fills the slots, runs out of due rows or fills a destination, so there are few.
        for _ in range(limit + 1):
            full = [d for d, left in room.items() if left <= 0]
            query = _claim_query(limit - len(claims), capped=bool(full))
            read, taken = self._claim_rows(connection, query, {"b_now": now, "b_full": full}, claims, limit, room,
                                           worker, now, lease)
            if len(claims) == limit or read < limit - len(claims) + taken or taken == read:
                break
        return claims

    @staticmethod
    def _claim_rows(connection, query, params: dict, claims: list[Claim], limit: int, room: dict[str, int] | None,
                    worker: str, now: dt.datetime, lease: dt.timedelta) -> tuple[int, int]:
        """Claim the rows ``query`` finds while ``claims`` has fewer than ``limit`` and their destination has
        ``room`` (appending to ``claims``); return how many rows were read and how many claimed."""
        updates = []
        lease_until = now + lease
        rows = connection.execute(query, params).all()
        for row in rows:
            if len(claims) == limit:
                break
            if room is not None:
                if room[row.destination] <= 0:
                    continue
                room[row.destination] -= 1
            last_error = row.last_error
            if row.state == IN_FLIGHT:
                last_error = (f"the claim of worker {row.claimed_by} lapsed at "
                              f"{row.lease_until.isoformat()} (it stopped during the attempt)")
            token = str(uuid.uuid4())
            updates.append({"b_id": row.id, "b_token": token, "b_worker": worker, "b_lease": lease_until,
                            "b_attempts": row.attempts + 1, "b_now": now, "b_error": last_error})
            claims.append(Claim(id=row.id, token=token, message_id=row.message_id, kind=row.kind,
                                destination=row.destination, endpoint=row.endpoint, payload=row.payload,
                                payload_message_id=row.payload_message_id,
                                payload_header_id=row.payload_header_id, attempts=row.attempts + 1,
                                expires_at=row.expires_at, lease_until=lease_until, due_at=row.due_at))
        if updates:  # claimed now: in flight, so the next batch cannot read them again
            connection.execute(_CLAIM, updates)
            inbox.refresh_states(connection, [u["b_id"] for u in updates])
        return len(rows), len(updates)

    def acknowledge_claim(self, claim: Claim, now: dt.datetime) -> bool:
        """Close ``claim``'s delivery as acknowledged at ``now`` if the claim still holds; return whether it did.

        One fenced ``UPDATE`` (the claim token must still be the row's):
        the worker's common case, without reading the row first.
        """
        connection = self.session.connection()
        result = connection.execute(_ACKNOWLEDGE, {"b_id": claim.id, "b_token": claim.token, "b_now": now})
        if result.rowcount != 1:
            return False
        inbox.refresh_states(connection, [claim.id])
        return True

    def renew(self, claims: list[Claim], *, now: dt.datetime, lease: dt.timedelta) -> list[Claim]:
        """Extend each of ``claims`` still held to ``now + lease`` (a live worker's heartbeat).

        Returns the claims that no longer hold (their lease ran out and
        another worker took the delivery, or it was closed): their outcome
        will not be recorded.
        """
        connection = self.session.connection()
        lost = []
        for claim in claims:
            result = connection.execute(_RENEW, {"b_id": claim.id, "b_token": claim.token, "b_lease": now + lease})
            if result.rowcount != 1:
                lost.append(claim)
        return lost

    def held(self, claim: Claim) -> DeliveryRow | None:
        """Return the claimed row, locked, if ``claim`` still holds it; else ``None`` (another worker took it)."""
        row = self.session.scalars(select(DeliveryRow).where(DeliveryRow.id == claim.id).with_for_update()).first()
        if row is None or row.state != IN_FLIGHT or row.claim_token != claim.token:
            return None
        return row

    def expired(self, *, now: dt.datetime, limit: int = 100) -> list[DeliveryRow]:
        """Return up to ``limit`` open deliveries past ``expires_at`` that no live claim holds, locked."""
        unclaimed = or_(DeliveryRow.state == PENDING, DeliveryRow.lease_until <= now)
        query = (select(DeliveryRow)
                 .where(DeliveryRow.state.in_(OPEN_STATES), DeliveryRow.expires_at <= now, unclaimed)
                 .order_by(DeliveryRow.expires_at, DeliveryRow.id)
                 .limit(limit)
                 .with_for_update(skip_locked=True))
        return list(self.session.scalars(query))

    # Mailboxes ---------------------------------------------------------------------------------

    def mailbox(self, agency: str, *, limit: int) -> tuple[int, list[DeliveryRow]]:
        """Return the number of ``agency``'s unacknowledged mailbox messages and the first ``limit`` of them.

        Earliest due first, then oldest first.
        """
        where = (DeliveryRow.destination == agency, DeliveryRow.mode == MAILBOX, DeliveryRow.state == PENDING)
        total = self.session.scalar(select(func.count()).select_from(DeliveryRow).where(*where))
        rows = self.session.scalars(select(DeliveryRow).where(*where)
                                    .order_by(DeliveryRow.due_at.is_(None), DeliveryRow.due_at,
                                              DeliveryRow.created_at, DeliveryRow.id)
                                    .limit(limit))
        return total or 0, list(rows)

    def mailbox_item(self, agency: str, delivery_id: str, *, lock: bool = False) -> DeliveryRow | None:
        """Return ``agency``'s mailbox delivery with this id (any state), or ``None``."""
        query = select(DeliveryRow).where(DeliveryRow.id == delivery_id, DeliveryRow.destination == agency,
                                          DeliveryRow.mode == MAILBOX)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    # Senders and operators ---------------------------------------------------------------------

    def accepted(self, message_id: str) -> AcceptedMessageRow | None:
        """Return the accepted message row, or ``None``."""
        return self.session.get(AcceptedMessageRow, message_id)

    def deliveries_of(self, message_id: str) -> list[Delivery]:
        """Return every delivery made from an accepted message (notices included), oldest first."""
        query = (select(DeliveryRow).where(DeliveryRow.message_id == message_id)
                 .order_by(DeliveryRow.created_at, DeliveryRow.destination, DeliveryRow.id))
        return [_delivery(row) for row in self.session.scalars(query)]

    def unroutable_of(self, message_id: str) -> list[UnroutableEntry]:
        """Return the unroutable entries of an accepted message."""
        query = select(UnroutableRow).where(UnroutableRow.message_id == message_id).order_by(UnroutableRow.created_at)
        return [_unroutable(row) for row in self.session.scalars(query)]

    def deliveries(self, *, state: str | None = None, destination: str | None = None,
                   limit: int = 100) -> list[Delivery]:
        """Return up to ``limit`` deliveries, most recently updated first, filtered by state and destination."""
        query = select(DeliveryRow).order_by(DeliveryRow.updated_at.desc(), DeliveryRow.id).limit(limit)
        if state is not None:
            query = query.where(DeliveryRow.state == state)
        if destination is not None:
            query = query.where(DeliveryRow.destination == destination)
        return [_delivery(row) for row in self.session.scalars(query)]

    def counts(self) -> dict[str, int]:
        """Return the number of deliveries in each state."""
        query = select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)
        return {state: count for state, count in self.session.execute(query)}

    def unroutable(self, *, include_resolved: bool = False, limit: int = 100) -> list[UnroutableEntry]:
        """Return unroutable entries, oldest first (open ones only unless ``include_resolved``)."""
        query = select(UnroutableRow).order_by(UnroutableRow.created_at, UnroutableRow.id).limit(limit)
        if not include_resolved:
            query = query.where(UnroutableRow.resolved.is_(False))
        return [_unroutable(row) for row in self.session.scalars(query)]

    def resolve_unroutable(self, entry_id: str, *, note: str, now: dt.datetime) -> UnroutableEntry | None:
        """Mark an unroutable entry resolved with the operator's ``note``; ``None`` if there is no such entry."""
        row = self.session.get(UnroutableRow, entry_id)
        if row is None:
            return None
        row.resolved, row.resolved_at, row.resolution = True, now, note
        return _unroutable(row)

    def requeue(self, delivery_id: str, *, now: dt.datetime, max_age: dt.timedelta) -> Delivery | None:
        """Put a dead-lettered delivery back to pending, due now, with a fresh maximum age.

        Returns the delivery, or ``None`` when there is none with this id.
        Raises :class:`ValueError` when it is not dead-lettered.
        """
        row = self.session.get(DeliveryRow, delivery_id, with_for_update=True)
        if row is None:
            return None
        if row.state != DEAD_LETTERED:
            raise ValueError(f"delivery {delivery_id} is {row.state}; only a dead-lettered delivery can be retried")
        row.state, row.next_attempt_at, row.expires_at = PENDING, now, now + max_age
        row.dead_lettered_at = None
        row.claimed_by = row.claim_token = row.lease_until = None
        row.updated_at = now
        self.state_changed(row)
        return _delivery(row)

    def state_changed(self, row: DeliveryRow) -> None:
        """Write ``row`` (changed through the session) and copy its state to its inbox entry."""
        self.session.flush()
        inbox.refresh_states(self.session.connection(), [row.id])


def any_due(connection, now: dt.datetime, full: list[str] | None = None) -> bool:
    """Return whether a push delivery is due at ``now`` (a read: a worker asks before it claims), for a
    destination not in ``full`` (those at the worker's cap), so a worker whose due deliveries all wait for a
    busy destination does not take the write lock for nothing."""
    if not full:
        return connection.execute(_ANY_DUE, {"b_now": now}).first() is not None
    return connection.execute(_ANY_DUE_WITH_ROOM, {"b_now": now, "b_full": full}).first() is not None


@functools.lru_cache(maxsize=64)
def _claim_query(limit: int, capped: bool = False):
    """The claim's SELECT for ``limit`` rows, built once per limit (a worker asks for as many as it has free
    slots); ``capped`` leaves out the destinations listed in ``b_full`` (no room left under the cap)."""
    d = _DELIVERY.c
    where = [*_DUE]
    if capped:
        where.append(d.destination.not_in(bindparam("b_full", expanding=True)))
    return (select(d.id, d.message_id, d.kind, d.destination, d.endpoint, d.payload, d.payload_message_id,
                   d.payload_header_id, d.attempts, d.expires_at, d.due_at, d.state, d.claimed_by,
                   d.lease_until, d.last_error)
            .where(*where)
            .order_by(d.due_at.is_(None), d.due_at, d.next_attempt_at, d.id)
            .limit(limit)
            .with_for_update(skip_locked=True))


def acknowledge(row: DeliveryRow, now: dt.datetime) -> None:
    """Close ``row`` as acknowledged at ``now`` by its mailbox's agency (audited in the row's transaction)."""
    for column, value in _acknowledged(now).items():
        setattr(row, column, value)
    SqlOutbox(object_session(row)).state_changed(row)
    record_audit(object_session(row), action="U", subtype="acknowledgement", agent=row.destination,
                 entities=[("delivery", row.id), ("message", row.payload_message_id)], at=now)
