"""Legal holds: a person whose messages the retention purge must keep, whatever their age.

A hold is placed on a person of the person index (a child, or an adult)
and covers every message that names that person in any role: as the child a
referral is about, as a sibling or household member of another child, as a
parent. A message that names two children is kept when either is held. A
hold does not spread by itself to the rest of a household (another child's
messages that do not name the held person): that would keep other children's
data on no instruction about them. ``gateway hold place --household`` places
a hold on every member of the household too, each its own hold that shows
in ``gateway hold list`` and is released on its own.

Placing and releasing write an audit record (subtype ``legal-hold``) in the
same transaction; the hold's reason stays in ``legal_hold`` and never goes
into the audit log (only ids and codes do).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from gateway.audit import record_audit
from gateway.linkage.index import household
from gateway.linkage.models import PersonRow
from gateway.retention.models import LegalHoldRow

_HOLD = LegalHoldRow.__table__
_PERSON = PersonRow.__table__


class HoldError(Exception):
    """A hold that cannot be placed or released; ``text`` says why and what to do."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


@dataclasses.dataclass(frozen=True)
class Hold:
    """One legal hold as stored."""

    id: int
    person_id: str
    reason: str
    placed_by: str
    placed_at: dt.datetime
    released_by: str | None = None
    released_at: dt.datetime | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None


def _connection(unit: Session | Connection) -> Connection:
    return unit.connection() if isinstance(unit, Session) else unit


def _hold(row) -> Hold:
    return Hold(**{field.name: getattr(row, field.name) for field in dataclasses.fields(Hold)})


def _required(value: str | None, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HoldError(f"a legal hold needs {what}")
    return value.strip()


def active_holds(connection: Connection, person_id: str | None = None) -> list[Hold]:
    """Return the active holds (of ``person_id`` when given), oldest first."""
    query = select(_HOLD).where(_HOLD.c.released_at.is_(None)).order_by(_HOLD.c.placed_at, _HOLD.c.id)
    if person_id is not None:
        query = query.where(_HOLD.c.person_id == person_id)
    return [_hold(row) for row in connection.execute(query)]


def all_holds(connection: Connection) -> list[Hold]:
    """Return every hold, active and released, oldest first."""
    return [_hold(row) for row in connection.execute(select(_HOLD).order_by(_HOLD.c.placed_at, _HOLD.c.id))]


def held_people(connection: Connection) -> set[str]:
    """Return the ids of the people under an active hold."""
    return set(connection.execute(select(_HOLD.c.person_id).where(_HOLD.c.released_at.is_(None))).scalars())


def place_hold(unit: Session | Connection, person_id: str, *, reason: str, by: str, now: dt.datetime) -> Hold:
    """Place a hold on ``person_id`` in the caller's transaction (a store session, whose audit record is then
    appended at its commit, or a connection); return it.

    Raises :class:`HoldError` without a reason or a name, for a person the
    index does not hold, and for a person already under an active hold
    (the message names who placed that one and when).
    """
    reason, by = _required(reason, "a reason (--reason: the case or inquiry reference)"), _required(
        by, "the name of who places it (--by)")
    connection = _connection(unit)
    if connection.execute(select(_PERSON.c.id).where(_PERSON.c.id == person_id)).first() is None:
        raise HoldError(f"no person {person_id} in the person index; find the id with `gateway chronology` or the "
                        "console")
    existing = active_holds(connection, person_id)
    if existing:
        first = existing[0]
        raise HoldError(f"person {person_id} is already held (hold {first.id}, placed by {first.placed_by} on "
                        f"{first.placed_at:%Y-%m-%d})")
    hold_id = connection.execute(insert(_HOLD).returning(_HOLD.c.id), {
        "person_id": person_id, "reason": reason, "placed_by": by, "placed_at": now}).scalar_one()
    record_audit(unit, action="C", subtype="legal-hold", agent=by,
                 entities=[("person", person_id), ("legal-hold", hold_id)], detail={"hold": "placed"}, at=now)
    return Hold(hold_id, person_id, reason, by, now)


def place_household_holds(unit: Session | Connection, person_id: str, *, reason: str, by: str,
                          now: dt.datetime) -> tuple[list[Hold], list[str]]:
    """Place a hold on ``person_id`` and every member of their household (:func:`gateway.linkage.index.household`).

    Returns the holds placed and the ids of the people already held (left
    as they are, ``person_id`` too). Raises :class:`HoldError` as
    :func:`place_hold` does (a missing reason or name, an unknown person).
    """
    placed, already = [], []
    for member in household(_connection(unit), person_id, limit=10_000):
        if active_holds(_connection(unit), member):
            already.append(member)
            continue
        placed.append(place_hold(unit, member, reason=reason, by=by, now=now))
    return placed, already


def release_hold(unit: Session | Connection, person_id: str, *, reason: str, by: str,
                 now: dt.datetime) -> list[Hold]:
    """Release every active hold on ``person_id`` (in the caller's transaction, as :func:`place_hold`); return
    them as released.

    The purge may then remove the person's messages once they are past
    retention. Raises :class:`HoldError` without a reason or a name, and
    when the person has no active hold.
    """
    reason, by = _required(reason, "a reason for the release (--reason)"), _required(
        by, "the name of who releases it (--by)")
    connection = _connection(unit)
    held = active_holds(connection, person_id)
    if not held:
        raise HoldError(f"person {person_id} has no active legal hold; list them with `gateway hold list`")
    connection.execute(update(_HOLD).where(_HOLD.c.id.in_([h.id for h in held])).values(
        released_by=by, released_at=now, release_reason=reason))
    for hold in held:
        record_audit(unit, action="U", subtype="legal-hold", agent=by,
                     entities=[("person", person_id), ("legal-hold", hold.id)], detail={"hold": "released"}, at=now)
    return [dataclasses.replace(h, released_by=by, released_at=now, release_reason=reason) for h in held]
