"""The person index on SQL: every record linked to a person, explainably, with people deciding the uncertain.

:class:`PersonIndex` works on one SQLAlchemy ``Connection`` inside the
caller's transaction (the accepting transaction of a message, or one batch
of an initial load) and never commits. It finds candidates through the
blocking keys of :func:`gateway.linkage.matching.blocking_keys`, reads every
record of each candidate person, and lets :func:`gateway.linkage.matching.decide`
decide (deterministic identifiers, conflicting identifiers, the twins rule,
the Fellegi-Sunter score). The outcome:

* ``linked``: the record joins the person;
* ``possible``: the record starts a person of its own, and a
  ``possible_match`` waits for a person to confirm (the two people become
  one) or reject it (a marker: never proposed again);
* ``new``: the record starts a person of its own.

Every decision is written to ``person_link_decision`` with who or what
decided, when, why and the score's fields. A decision a person made
(``by_person``) is never overturned by :meth:`PersonIndex.rescore`; any link
can be undone (:meth:`PersonIndex.unlink`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, union_all, update

from gateway.audit import record_audit
from gateway.delivery import inbox
from gateway.linkage.matching import (Candidate, LinkDecision, MatchModel, PersonRecord, blocking_keys, decide,
                                      tells_apart)
from gateway.linkage.sizing import people_in_index
from gateway.linkage.models import (
    CONFIRMED,
    LINKED,
    NEW,
    OPEN,
    POSSIBLE,
    REJECTED,
    UNLINKED,
    EscalationRow,
    LinkDecisionRow,
    LinkKeyRow,
    MessageEventRow,
    PersonRow,
    PossibleMatchRow,
    RelationRow,
)
from gateway.store.models import MessagePersonRow

GATEWAY_DECIDER = "gateway"
#: Candidate people read for one record at the most; more means the blocking keys are too coarse.
MAX_CANDIDATES = 200

_MP = MessagePersonRow.__table__
_KEY = LinkKeyRow.__table__
_PERSON = PersonRow.__table__
_DECISION = LinkDecisionRow.__table__
_MATCH = PossibleMatchRow.__table__
_RELATION = RelationRow.__table__
_EVENT = MessageEventRow.__table__
_ESCALATION = EscalationRow.__table__

_RECORD_FIELDS = ("given", "family", "birth_date", "sex", "postcode", "nhs_number", "upn", "school_urn")
_CANDIDATE_PEOPLE = (
    select(_MP.c.person_id).distinct()
    .select_from(_KEY.join(_MP, _MP.c.id == _KEY.c.record_id))
    .join(_PERSON, _PERSON.c.id == _MP.c.person_id)
    .where(_KEY.c.key.in_(bindparam("keys", expanding=True)), _PERSON.c.kind == bindparam("kind"),
           _MP.c.id != bindparam("record_id"))
    .limit(MAX_CANDIDATES)
)
#: Every record of the candidate people, found and read in one statement (one round trip to the database).
_CANDIDATE = _MP.alias("candidate_record")
_CANDIDATE_RECORDS = select(_CANDIDATE.c.person_id, *(_CANDIDATE.c[f] for f in _RECORD_FIELDS)).where(
    _CANDIDATE.c.person_id.in_(_CANDIDATE_PEOPLE), _CANDIDATE.c.id != bindparam("record_id"))
#: The same on PostgreSQL, locking each candidate person (FOR KEY SHARE) as their records are read, so the
#: retention purge (gateway.retention) cannot remove a person this transaction may still link a record to.
_CANDIDATE_RECORDS_LOCKING = _CANDIDATE_RECORDS.join_from(
    _CANDIDATE, _PERSON, _PERSON.c.id == _CANDIDATE.c.person_id).with_for_update(read=True, key_share=True,
                                                                                  of=_PERSON)
_INSERT_RECORD = insert(_MP).returning(_MP.c.id)
_INSERT_KEY = insert(_KEY)
_INSERT_DECISION = insert(_DECISION)
_INSERT_PERSON = insert(_PERSON)
_SET_HOME_LA = update(_PERSON).where(_PERSON.c.id == bindparam("b_person"), or_(
    _PERSON.c.home_la.is_(None), _PERSON.c.home_la != bindparam("b_home_la"))).values(home_la=bindparam("b_home_la"))
_REJECTED_FOR = select(_MATCH.c.candidate_person_id).where(_MATCH.c.record_id == bindparam("record_id"),
                                                           _MATCH.c.status == REJECTED)


def record_of(row) -> PersonRecord:
    """Return the :class:`PersonRecord` of a ``message_person`` row (or any object with its columns)."""
    return PersonRecord(**{name: getattr(row, name) for name in _RECORD_FIELDS})


@dataclasses.dataclass(frozen=True)
class Linked:
    """Where one record ended: its person, the decision and the deciding score (None without one)."""

    record_id: int
    person_id: str
    decision: str
    score: float | None
    reason: str
    match_id: int | None = None  # the possible match waiting for a person


class ReviewError(Exception):
    """A review action that cannot be taken (unknown or already decided match, unknown record)."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


class PersonIndex:
    """The person index within one transaction; see the module docstring."""

    def __init__(self, connection: Connection, model: MatchModel):
        self.connection = connection
        self.base_model = model
        self._sized: MatchModel | None = None

    @property
    def model(self) -> MatchModel:
        """The model with its thresholds for the index's present size (``MatchModel.at_size``), once per index."""
        if self._sized is None:
            self._sized = self.base_model.at_size(people_in_index(self.connection))
        return self._sized

    # -- linking -------------------------------------------------------------------------------------------------

    def add(self, values: dict, record: PersonRecord, *, kind: str, now: dt.datetime,
            home_la: str | None = None) -> Linked:
        """Store a new record (``message_person`` ``values``, normalised as ``record``) linked to a person.

        What the accept path and an initial load call: the record is
        decided first and written once, with its person. ``kind`` is
        ``child`` or ``adult`` (a record is matched only with people of its
        kind); ``home_la`` the agency URI of the child's home LA's
        children's services when known (who may review a possible match).
        Writes the decision, the blocking keys and any possible match.
        """
        keys = blocking_keys(record)
        decision = decide(self.model, record, self._candidates(-1, keys, kind))
        person_id = self._person_for(decision, kind=kind, now=now, home_la=home_la)
        record_id = self.connection.execute(_INSERT_RECORD, dict(
            values, person_id=person_id, link_decision=decision.decision,
            link_score=decision.score.weight if decision.score is not None else None,
            link_by_person=False)).scalar_one()
        return self._file(record_id, person_id, keys, decision, now=now, home_la=home_la)

    def link(self, record_id: int, record: PersonRecord, *, kind: str, now: dt.datetime,
             home_la: str | None = None) -> Linked:
        """Link the stored, unlinked record ``record_id`` (its values ``record``) to a person; see :meth:`add`."""
        keys = blocking_keys(record)
        decision = decide(self.model, record, self._candidates(record_id, keys, kind))
        person_id = self._person_for(decision, kind=kind, now=now, home_la=home_la)
        self.connection.execute(update(_MP).where(_MP.c.id == record_id).values(
            person_id=person_id, link_decision=decision.decision,
            link_score=decision.score.weight if decision.score is not None else None, link_by_person=False))
        return self._file(record_id, person_id, keys, decision, now=now, home_la=home_la)

    def _candidates(self, record_id: int, keys: Sequence[str], kind: str) -> list[Candidate]:
        if not keys:
            return []
        query = _CANDIDATE_RECORDS_LOCKING if self.connection.dialect.name == "postgresql" else _CANDIDATE_RECORDS
        records: dict[str, list[PersonRecord]] = {}
        for row in self.connection.execute(query, {"keys": list(keys), "kind": kind, "record_id": record_id}):
            records.setdefault(row.person_id, []).append(record_of(row))
        if not records:
            return []
        # A record not stored yet (record_id -1, from add) has no rejections to read.
        rejected = (set(self.connection.execute(_REJECTED_FOR, {"record_id": record_id}).scalars())
                    if record_id >= 0 else set())
        return [Candidate(person_id=p, records=tuple(found), rejected=p in rejected) for p, found in records.items()]

    def _person_for(self, decision: LinkDecision, *, kind: str, now: dt.datetime, home_la: str | None) -> str:
        """The person a decided record belongs to: the linked one (its home LA brought up to date), else new."""
        if decision.decision == LINKED and decision.person_id is not None:
            if home_la:
                self.connection.execute(_SET_HOME_LA, {"b_person": decision.person_id, "b_home_la": home_la})
            return decision.person_id
        return self.new_person(kind=kind, now=now, home_la=home_la)

    def _file(self, record_id: int, person_id: str, keys: Sequence[str], decision: LinkDecision, *,
              now: dt.datetime, home_la: str | None) -> Linked:
        """Write what a decision leaves: the blocking keys, the decision, joins and possible matches."""
        score = decision.score.weight if decision.score is not None else None
        explanation = _explanation(decision)
        if keys:
            self.connection.execute(_INSERT_KEY, [{"key": key, "record_id": record_id} for key in dict.fromkeys(keys)])
        self._decided(record_id, person_id, decision.decision, score, explanation, GATEWAY_DECIDER + self._version(),
                      False, now, decision.reason)
        match_id = None
        if decision.decision == LINKED and decision.alternatives:
            # The record is the linked person and also, by itself, someone else the index holds: those two are
            # one person when the record links to the other on its own too and nothing tells them apart;
            # otherwise a person decides.
            for other, other_score in decision.alternatives:
                if other == person_id:
                    continue
                if (other_score.rule is None and other_score.weight >= self.model.link_threshold
                        and self._joinable(person_id, other)):
                    moved = self.connection.execute(select(_MP.c.id).where(_MP.c.person_id == other)).scalars().all()
                    self._merge(other, person_id, now)
                    for moved_id in moved:
                        self._decided(moved_id, person_id, LINKED, other_score.weight, explanation,
                                      GATEWAY_DECIDER + self._version(), False, now,
                                      f"joined through record {record_id}, which links to both people on its own")
                else:
                    self._propose(record_id, other, other_score.weight,
                                  json.dumps({"reason": "also close to another person", "score": other_score.as_dict()}),
                                  now, home_la)
        if decision.decision == POSSIBLE and decision.person_id is not None:
            match_id = self._propose(record_id, decision.person_id, score, explanation, now, home_la)
            for other, other_score in decision.alternatives:
                if other != decision.person_id:
                    self._propose(record_id, other, other_score.weight,
                                  json.dumps({"reason": decision.reason, "score": other_score.as_dict()}), now,
                                  home_la)
        return Linked(record_id, person_id, decision.decision, score, decision.reason, match_id)

    def _joinable(self, one: str, other: str) -> bool:
        """Whether two people may be joined without a person: nothing tells them apart (``tells_apart``)."""
        rows = self.connection.execute(select(_MP.c.person_id, *(_MP.c[f] for f in _RECORD_FIELDS)).where(
            _MP.c.person_id.in_([one, other]))).all()
        mine = [record_of(r) for r in rows if r.person_id == one]
        theirs = [record_of(r) for r in rows if r.person_id == other]
        return not tells_apart(self.model, mine, theirs)

    def _version(self) -> str:
        version = getattr(self.model, "version", None)
        return f" (match model {version})" if version else " (match model)"

    def new_person(self, *, kind: str, now: dt.datetime, home_la: str | None = None) -> str:
        """Create a person with no records yet; return its id."""
        person_id = str(uuid.uuid4())
        self.connection.execute(_INSERT_PERSON, {"id": person_id, "kind": kind, "created_at": now,
                                                  "home_la": home_la})
        return person_id

    def _propose(self, record_id: int, person_id: str, score: float | None, explanation: str, now: dt.datetime,
                 home_la: str | None) -> int | None:
        existing = self.connection.execute(select(_MATCH.c.id, _MATCH.c.status).where(
            _MATCH.c.record_id == record_id, _MATCH.c.candidate_person_id == person_id)).first()
        if existing is not None:  # proposed before: a person's rejection stands, an open one stays open
            return existing.id if existing.status == OPEN else None
        return self.connection.execute(insert(_MATCH).returning(_MATCH.c.id), {
            "record_id": record_id, "candidate_person_id": person_id, "score": score, "explanation": explanation,
            "status": OPEN, "home_la": home_la, "created_at": now}).scalar_one()

    def _decided(self, record_id: int, person_id: str, decision: str, score: float | None, explanation: str | None,
                 decided_by: str, by_person: bool, now: dt.datetime, reason: str) -> None:
        self.connection.execute(_INSERT_DECISION, {
            "record_id": record_id, "person_id": person_id, "decision": decision, "score": score,
            "explanation": explanation, "decided_by": decided_by, "by_person": by_person, "decided_at": now,
            "reason": reason})

    # -- a person's decisions ---------------------------------------------------------------------------------

    def confirm(self, match_id: int, *, by: str, reason: str, now: dt.datetime) -> str:
        """A person confirms a possible match: the record's person and the candidate become one; return its id.

        Everything linked to the record's person (its records, events,
        relations, flags) moves to the candidate person, and each moved
        record gets a ``confirmed`` decision by ``by``. Raises
        :class:`ReviewError` (404) for an unknown match, (409) for one
        already decided, (400) without a reason.
        """
        match = self._open_match(match_id, reason)
        record_person = self.connection.execute(select(_MP.c.person_id).where(
            _MP.c.id == match.record_id)).scalar_one()
        target = match.candidate_person_id
        self.connection.execute(update(_MATCH).where(_MATCH.c.id == match_id).values(
            status=CONFIRMED, decided_by=by, decided_at=now, reason=reason.strip()))
        if record_person != target:
            moved = self.connection.execute(select(_MP.c.id).where(_MP.c.person_id == record_person)).scalars().all()
            self._merge(record_person, target, now)
            for record_id in moved:
                self.connection.execute(update(_MP).where(_MP.c.id == record_id).values(
                    link_decision=CONFIRMED, link_by_person=True))
                self._decided(record_id, target, CONFIRMED, match.score, match.explanation, by, True, now,
                              reason.strip())
        record_audit(self.connection, action="U", subtype="link-confirmation", agent=by, at=now,
                     entities=[("match", match_id), ("record", match.record_id), ("person", target)],
                     detail={"decision": CONFIRMED})
        return target

    def reject(self, match_id: int, *, by: str, reason: str, now: dt.datetime) -> None:
        """A person rejects a possible match: the two stay apart, and the pair is never proposed again.

        Raises :class:`ReviewError` as :meth:`confirm` does.
        """
        match = self._open_match(match_id, reason)
        self.connection.execute(update(_MATCH).where(_MATCH.c.id == match_id).values(
            status=REJECTED, decided_by=by, decided_at=now, reason=reason.strip()))
        person_id = self.connection.execute(select(_MP.c.person_id).where(_MP.c.id == match.record_id)).scalar_one()
        self.connection.execute(update(_MP).where(_MP.c.id == match.record_id).values(link_by_person=True))
        self._decided(match.record_id, person_id, REJECTED, match.score, match.explanation, by, True, now,
                      reason.strip())
        record_audit(self.connection, action="U", subtype="link-confirmation", agent=by, at=now,
                     entities=[("match", match_id), ("record", match.record_id), ("person", person_id)],
                     detail={"decision": REJECTED})

    def unlink(self, record_id: int, *, by: str, reason: str, now: dt.datetime) -> str:
        """Undo a record's link: it becomes a person of its own, never linked back to the old one by score.

        Returns the new person's id. The old person is kept as a rejected
        candidate of the record (a marker re-scoring respects). Raises
        :class:`ReviewError` (404) for an unknown record, (400) without a reason.
        """
        if not reason or not reason.strip():
            raise ReviewError(400, "undoing a link needs a reason")
        row = self.connection.execute(select(_MP.c.person_id, _MP.c.message_id, _MP.c.role).where(
            _MP.c.id == record_id)).first()
        if row is None:
            raise ReviewError(404, f"no record {record_id}")
        old = row.person_id
        kind = self.connection.execute(select(_PERSON.c.kind, _PERSON.c.home_la).where(_PERSON.c.id == old)).first()
        new = self.new_person(kind=kind.kind if kind else "adult", now=now,
                              home_la=kind.home_la if kind else None)
        self.connection.execute(update(_MP).where(_MP.c.id == record_id).values(
            person_id=new, link_decision=UNLINKED, link_by_person=True))
        if row.message_id is not None:
            self.connection.execute(update(_EVENT).where(_EVENT.c.message_id == row.message_id,
                                                         _EVENT.c.child_person_id == old).values(child_person_id=new))
            inbox.refresh(self.connection, message_ids=[row.message_id])  # the inbox shows the child's person
            for column in ("person_id", "related_person_id"):
                self.connection.execute(update(_RELATION).where(_RELATION.c.message_id == row.message_id,
                                                                _RELATION.c[column] == old).values({column: new}))
        marker = self.connection.execute(select(_MATCH.c.id).where(_MATCH.c.record_id == record_id,
                                                                   _MATCH.c.candidate_person_id == old)).scalar()
        if marker is None:
            self.connection.execute(insert(_MATCH), {
                "record_id": record_id, "candidate_person_id": old, "status": REJECTED, "created_at": now,
                "decided_by": by, "decided_at": now, "reason": reason.strip()})
        else:
            self.connection.execute(update(_MATCH).where(_MATCH.c.id == marker).values(
                status=REJECTED, decided_by=by, decided_at=now, reason=reason.strip()))
        self._decided(record_id, new, UNLINKED, None, json.dumps({"from_person": old}), by, True, now, reason.strip())
        record_audit(self.connection, action="U", subtype="link-confirmation", agent=by, at=now,
                     entities=[("record", record_id), ("person", old), ("person", new)],
                     detail={"decision": UNLINKED})
        return new

    def rescore(self, record_id: int, *, now: dt.datetime) -> Linked | None:
        """Decide a record again with today's model, unless a person decided it; return the outcome or None.

        A record a person confirmed, rejected or unlinked keeps that
        decision: None is returned and nothing changes. Otherwise the record
        leaves its person only when the new decision links it elsewhere.
        """
        row = self.connection.execute(select(_MP).where(_MP.c.id == record_id)).first()
        if row is None or row.link_by_person:
            return None
        from gateway.linkage.records import kind_of

        record = record_of(row)
        kind = kind_of(row.role)
        keys = blocking_keys(record)
        candidates = [c for c in self._candidates(record_id, keys, kind) if c.person_id != row.person_id]
        decision = decide(self.model, record, candidates)
        if decision.decision != LINKED or decision.person_id is None:
            return Linked(record_id, row.person_id, row.link_decision or NEW, row.link_score, "unchanged")
        self._merge(row.person_id, decision.person_id, now) if self._alone(row.person_id) else None
        self.connection.execute(update(_MP).where(_MP.c.id == record_id).values(
            person_id=decision.person_id, link_decision=LINKED, link_score=decision.score.weight if decision.score
            else None))
        self._decided(record_id, decision.person_id, LINKED, decision.score.weight if decision.score else None,
                      _explanation(decision), GATEWAY_DECIDER + self._version(), False, now,
                      "re-scored: " + decision.reason)
        return Linked(record_id, decision.person_id, LINKED, decision.score.weight if decision.score else None,
                      decision.reason)

    def _alone(self, person_id: str) -> bool:
        return self.connection.execute(select(func.count()).select_from(_MP).where(
            _MP.c.person_id == person_id)).scalar_one() <= 1

    def _open_match(self, match_id: int, reason: str):
        if not isinstance(reason, str) or not reason.strip():
            raise ReviewError(400, "a decision on a possible match needs a reason")
        match = self.connection.execute(select(_MATCH).where(_MATCH.c.id == match_id)).first()
        if match is None:
            raise ReviewError(404, f"no possible match {match_id}")
        if match.status != OPEN:
            raise ReviewError(409, f"possible match {match_id} was already {match.status} by {match.decided_by}")
        return match

    def _merge(self, source: str, target: str, now: dt.datetime) -> None:
        """Move everything of person ``source`` to ``target`` (two people found to be one); ``source`` stays, with
        nothing of its own, as merged into ``target`` at ``now`` (and so do those merged into it before: one
        step to the person kept, however many merges)."""
        c = self.connection
        c.execute(update(_MP).where(_MP.c.person_id == source).values(person_id=target))
        moved = c.execute(select(_EVENT.c.message_id).where(_EVENT.c.child_person_id == source)).scalars().all()
        c.execute(update(_EVENT).where(_EVENT.c.child_person_id == source).values(child_person_id=target))
        inbox.refresh(c, message_ids=moved)  # the inbox shows the child's person
        c.execute(update(_ESCALATION).where(_ESCALATION.c.person_id == source).values(person_id=target))
        for mine, other in (("person_id", "related_person_id"), ("related_person_id", "person_id")):
            rows = c.execute(select(_RELATION).where(_RELATION.c[mine] == source)).all()
            c.execute(delete(_RELATION).where(_RELATION.c[mine] == source))
            for row in rows:
                values = dict(row._mapping, **{mine: target})
                if values["person_id"] == values["related_person_id"]:
                    continue
                if not c.execute(select(_RELATION.c.message_id).where(
                        _RELATION.c.person_id == values["person_id"],
                        _RELATION.c.related_person_id == values["related_person_id"],
                        _RELATION.c.relation == values["relation"])).first():
                    c.execute(insert(_RELATION), values)
        # Open proposals of the old person now point at the merged one (unless that pair exists already).
        for row in c.execute(select(_MATCH.c.id, _MATCH.c.record_id).where(
                _MATCH.c.candidate_person_id == source)).all():
            clash = c.execute(select(_MATCH.c.id).where(_MATCH.c.record_id == row.record_id,
                                                        _MATCH.c.candidate_person_id == target)).first()
            if clash is None:
                c.execute(update(_MATCH).where(_MATCH.c.id == row.id).values(candidate_person_id=target))
        # A proposal between records now of one person is settled.
        c.execute(update(_MATCH).where(
            _MATCH.c.status == OPEN, _MATCH.c.candidate_person_id == target,
            _MATCH.c.record_id.in_(select(_MP.c.id).where(_MP.c.person_id == target))).values(
            status=CONFIRMED, reason="the two became one person"))
        home = c.execute(select(_PERSON.c.home_la).where(_PERSON.c.id == source)).scalar()
        if home:
            c.execute(update(_PERSON).where(_PERSON.c.id == target, _PERSON.c.home_la.is_(None)).values(home_la=home))
        c.execute(update(_PERSON).where(_PERSON.c.merged_into == source).values(merged_into=target))
        c.execute(update(_PERSON).where(_PERSON.c.id == source).values(merged_into=target, merged_at=now))

    # -- household --------------------------------------------------------------------------------------------

    def relate(self, child: str, adult: str, relation: str, message_id: str) -> None:
        """Record that ``adult`` (or another child) is named with ``child`` in ``message_id`` (once per pair)."""
        if child == adult:
            return
        self.connection.execute(_insert_ignoring(self.connection, _RELATION), {
            "person_id": child, "related_person_id": adult, "relation": relation, "message_id": message_id})


def _insert_ignoring(connection: Connection, table):
    """``INSERT ... ON CONFLICT DO NOTHING`` on either engine (a row that exists already is left as it is)."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table).on_conflict_do_nothing()


def household(connection: Connection, person_id: str, *, limit: int = 50) -> list[str]:
    """Return ``person_id`` and the people of its household: those named with it, and the children named
    with those (siblings through a shared parent or adult). At most ``limit`` people, the person first."""
    related = set(connection.execute(union_all(
        select(_RELATION.c.related_person_id).where(_RELATION.c.person_id == person_id),
        select(_RELATION.c.person_id).where(_RELATION.c.related_person_id == person_id))).scalars())
    if related:
        related |= set(connection.execute(select(_RELATION.c.person_id).where(
            _RELATION.c.related_person_id.in_(list(related)))).scalars())
    related.discard(person_id)
    return [person_id] + sorted(related)[: limit - 1]


def open_matches(connection: Connection, *, home_la: str | None = None, limit: int = 100) -> list[dict]:
    """Return the possible matches waiting for a person (of ``home_la`` when given), oldest first.

    Each: id, record (the new record's fields and source), candidate person
    with its records, score and the score's fields.
    """
    query = select(_MATCH).where(_MATCH.c.status == OPEN).order_by(_MATCH.c.created_at, _MATCH.c.id).limit(limit)
    if home_la is not None:
        query = query.where(_MATCH.c.home_la == home_la)
    out = []
    for match in connection.execute(query):
        out.append(match_view(connection, match))
    return out


def match_view(connection: Connection, match) -> dict:
    """Return one possible match as the review API shows it (both sides, field by field)."""
    record = connection.execute(select(_MP).where(_MP.c.id == match.record_id)).first()
    candidates = connection.execute(select(_MP).where(_MP.c.person_id == match.candidate_person_id)
                                    .order_by(_MP.c.id)).all()
    explanation = json.loads(match.explanation) if match.explanation else None
    return {
        "id": match.id, "status": match.status, "score": match.score, "created_at": _iso(match.created_at),
        "home_la": match.home_la, "record": _record_view(record) if record is not None else None,
        "record_person_id": record.person_id if record is not None else None,
        "candidate_person_id": match.candidate_person_id,
        "candidate_records": [_record_view(row) for row in candidates],
        "explanation": explanation,
        "decided_by": match.decided_by, "decided_at": _iso(match.decided_at), "reason": match.reason,
    }


def _record_view(row) -> dict:
    return {"record_id": row.id, "source": row.source, "source_record": row.source_record,
            "message_id": row.message_id, "role": row.role,
            **{name: getattr(row, name) for name in _RECORD_FIELDS}}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _explanation(decision: LinkDecision) -> str:
    body = {"reason": decision.reason, "score": decision.score.as_dict() if decision.score is not None else None}
    if decision.alternatives:
        body["alternatives"] = [{"person_id": p, "weight": s.weight} for p, s in decision.alternatives]
    return json.dumps(body)

