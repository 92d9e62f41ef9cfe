"""The multi-agency chronology of a child and their household, and the figures per agency.

:func:`chronology` reads the stored events (one ``message_event`` row per
accepted message, extracted when it was accepted: no message is parsed
here), ordered by when each thing happened, then when it was recorded, with
the agency, kind, categories, risk, lateness, a one-line summary, versions,
duplicate flags and the escalations raised. :func:`chronology_bundle` gives
the same as a FHIR ``collection`` Bundle: the child's Patient, one
``Communication`` per event and one ``Flag`` per escalation.
"""

from __future__ import annotations

import datetime as dt
import functools
import json

import orjson
from sqlalchemy import Connection, case, func, insert, or_, select

from gateway.audit import record_audit
from gateway.linkage.index import household
from gateway.linkage.models import (
    OPEN,
    DeadlineRow,
    EscalationRow,
    MessageEventRow,
    PersonalDataReadRow,
    PersonRow,
    PossibleDuplicateRow,
    PossibleMatchRow,
)
from gateway.model import systems as S
from gateway.model.terminology import MESSAGE_EVENTS
from gateway.store.engine import among
from gateway.store.models import AcceptedMessageRow, MessagePersonRow

_MP = MessagePersonRow.__table__
_EVENT = MessageEventRow.__table__
_ESC = EscalationRow.__table__
_DUP = PossibleDuplicateRow.__table__
_MATCH = PossibleMatchRow.__table__
_DEADLINE = DeadlineRow.__table__
_PERSON = PersonRow.__table__
_ACCEPTED = AcceptedMessageRow.__table__
_READ = PersonalDataReadRow.__table__

#: Most events one chronology returns (newest kept when there are more; the response says so).
MAX_EVENTS = 1000


def person(connection: Connection, person_id: str):
    """Return the ``person`` row, or None."""
    return connection.execute(select(_PERSON).where(_PERSON.c.id == person_id)).first()


# What kind of thing each read's subject is, for the audit record (a page of many people has no subject).
_READ_SUBJECTS = {"chronology": "person", "console-message": "message", "console-decision": "message",
                  "possible-match": "match", "possible-duplicate": "duplicate-flag"}


def record_read(connection: Connection, agency: str, what: str, subject: str | None, now: dt.datetime) -> None:
    """Record that ``agency`` read personal data (``what`` about ``subject``) at ``now``: for the console's
    "who viewed" and, in the same transaction, in the audit log."""
    connection.execute(insert(_READ), {"agency": agency, "what": what, "subject": subject, "read_at": now})
    record_audit(connection, action="R", subtype="read", agent=agency, detail={"what": what}, at=now,
                 entities=[(_READ_SUBJECTS.get(what, "subject"), subject)] if subject is not None else ())


#: The columns of an event a brief chronology reads (:func:`chronology`'s ``brief``).
_BRIEF_COLUMNS = ("message_id", "sender_agency", "kind", "child_person_id", "occurred_at", "recorded_at",
                  "received_at", "risk", "late_days", "summary", "version")


def chronology(connection: Connection, person_id: str, *, iso_times: bool = True, identifiers: bool = True,
               brief: bool = False, subject=None) -> dict:
    """Return the chronology of ``person_id``: ``person``, ``household``, ``events``, ``escalations``.

    Times are ISO 8601 text (the API's and the command's JSON), or with ``iso_times`` false the aware
    datetimes themselves (the console, which formats them for people: no text made to be parsed again).
    With ``identifiers`` false the person's NHS numbers and UPNs are left out (empty lists): a page that does
    not show them does not decrypt them from every record. With ``brief`` each event has only who it is
    about, the agency, kind, times, risk, lateness, summary, version, possible duplicates and deadlines (the
    console's timeline and table): the categories, notice type, outcome, flags, earlier version, changes and
    link are neither read nor decrypted. ``subject`` is the ``person`` row when the caller has read it already
    (else it is read here).

    Each event: message id, who it is about (person id, and whether it is
    the child or a household member), agency, kind, occurred/recorded/
    received times, categories, notice type, risk, outcome, lateness in
    days, summary, version (and the message it replaces, with what
    changed), and open possible-duplicate flags. Ordered by when it
    happened (else when recorded, else received), then when recorded.
    """
    when_text = _iso if iso_times else _same
    people = household(connection, person_id)
    messages = select(_MP.c.message_id).where(_MP.c.person_id.in_(people), _MP.c.message_id.is_not(None))
    of_household = functools.partial(among, connection, values=messages)  # on PostgreSQL: = ANY, looked up
    when = func.coalesce(_EVENT.c.occurred_at, _EVENT.c.recorded_at, _EVENT.c.received_at)
    # Rows as mappings: read by key, a row's value costs a third of reading it as an attribute (measured on
    # 200 events: 0.6 ms against 2.1), and a chronology reads twenty of each of hundreds of rows.
    rows = connection.execute(
        select(*(_EVENT.c[name] for name in _BRIEF_COLUMNS) if brief else (_EVENT,))
        .where(of_household(_EVENT.c.message_id))
        .order_by(when, func.coalesce(_EVENT.c.recorded_at, _EVENT.c.received_at), _EVENT.c.message_id)
        .limit(MAX_EVENTS + 1)).mappings().all()
    truncated = len(rows) > MAX_EVENTS
    rows = rows[:MAX_EVENTS]
    duplicates: dict[str, list[dict]] = {}
    deadlines: dict[str, list[dict]] = {}
    # The flags and deadlines of the same messages, selected by the same subquery (a list of up to a thousand
    # ids as bound parameters cost more to render and send than the rows themselves).
    if rows:
        for d in connection.execute(select(_DUP.c.id, _DUP.c.message_id, _DUP.c.duplicate_of, _DUP.c.similarity,
                                           _DUP.c.reason).where(
                or_(of_household(_DUP.c.message_id), of_household(_DUP.c.duplicate_of)),
                _DUP.c.status == OPEN)).mappings().all():
            for mine, other in ((d["message_id"], d["duplicate_of"]), (d["duplicate_of"], d["message_id"])):
                duplicates.setdefault(mine, []).append({"id": d["id"], "other_message_id": other,
                                                        "similarity": d["similarity"], "reason": d["reason"]})
        for d in connection.execute(select(_DEADLINE.c.message_id, _DEADLINE.c.kind, _DEADLINE.c.agency,
                                           _DEADLINE.c.due_at, _DEADLINE.c.met_at)
                                    .where(of_household(_DEADLINE.c.message_id))).mappings().all():
            due_at, met_at = d["due_at"], d["met_at"]
            deadlines.setdefault(d["message_id"], []).append({
                "kind": d["kind"], "agency": d["agency"], "due_at": when_text(due_at), "met_at": when_text(met_at),
                "late": met_at is not None and met_at > due_at})
    events = []
    agency_kind = functools.lru_cache(maxsize=None)(S.parse_agency_uri)  # a few senders, many events each
    loads = orjson.loads
    for row in rows:
        message_id, sender, kind, child = row["message_id"], row["sender_agency"], row["kind"], row["child_person_id"]
        parsed = agency_kind(sender)
        event = {
            "message_id": message_id, "person_id": child, "about": "child" if child == person_id else "household",
            "agency": sender, "agency_kind": parsed[0] if parsed else None,
            "kind": kind, "kind_display": MESSAGE_EVENTS.get(kind, (kind, ""))[0],
            "occurred_at": when_text(row["occurred_at"]), "recorded_at": when_text(row["recorded_at"]),
            "received_at": when_text(row["received_at"]), "risk": row["risk"], "late_days": row["late_days"],
            "summary": row["summary"], "version": row["version"],
            "possible_duplicates": duplicates.get(message_id, []),
            "deadlines": deadlines.get(message_id, []),
        }
        if not brief:
            changes = row["changes"]
            event.update({
                "categories": loads(row["categories"] or "[]"), "notice_type": row["notice_type"],
                "outcome": row["outcome"], "disclosure": bool(row["disclosure"]), "referral": bool(row["referral"]),
                "previous_message_id": row["previous_message_id"], "changes": loads(changes) if changes else None,
                "link": f"/messages/{message_id}/status"})
        events.append(event)
    escalations = [{"rule_id": e.rule_id, "person_id": e.person_id, "raised_at": when_text(e.raised_at),
                    "reason": e.reason, "triggers": json.loads(e.triggers), "message_id": e.message_id,
                    "flag": json.loads(e.flag)}
                   for e in connection.execute(select(_ESC).where(_ESC.c.person_id.in_(people))
                                               .order_by(_ESC.c.raised_at, _ESC.c.id)).all()]
    if subject is None:
        subject = person(connection, person_id)
    # Every record of the child (each encrypted apart: as many values to decrypt), read by position.
    names = connection.execute(select(_MP.c.given, _MP.c.family, _MP.c.birth_date,
                                      *((_MP.c.nhs_number, _MP.c.upn) if identifiers else ()))
                               .where(_MP.c.person_id == person_id).order_by(_MP.c.id)).all()
    return {
        "person": {"id": person_id, "kind": subject.kind if subject else None,
                   "home_la": subject.home_la if subject else None,
                   "names": sorted({" ".join(p for p in (given, family) if p) for given, family, *_ in names} - {""}),
                   "birth_dates": sorted({n[2] for n in names if n[2]}),
                   "nhs_numbers": sorted({n[3] for n in names if n[3]}) if identifiers else [],
                   "upns": sorted({n[4] for n in names if n[4]}) if identifiers else []},
        "household": people[1:], "events": events, "escalations": escalations, "truncated": truncated,
    }


def chronology_bundle(view: dict, *, now: dt.datetime, base_url: str = "") -> dict:
    """Return :func:`chronology`'s result as a FHIR R4 ``collection`` Bundle.

    The Patient (id = the person id, names and identifiers as linked), then
    one ``Communication`` per event in order (``sent`` = recorded,
    ``received`` = received by the gateway, the ``event-occurred`` extension
    = when it happened, ``about`` = the message, ``payload`` = the summary,
    ``reasonCode`` = the categories) and one ``Flag`` per escalation.
    """
    who = view["person"]
    patient = {"resourceType": "Patient", "id": who["id"],
               "identifier": ([{"system": S.NHS_NUMBER, "value": n} for n in who["nhs_numbers"]]
                              + [{"system": S.UPN, "value": u} for u in who["upns"]]),
               "name": [{"text": name} for name in who["names"]]}
    if len(who["birth_dates"]) == 1:
        patient["birthDate"] = who["birth_dates"][0]
    entries = [_entry(base_url, patient)]
    for n, event in enumerate(view["events"]):
        communication = {
            "resourceType": "Communication", "id": f"event-{n + 1}", "status": "completed",
            "category": [{"coding": [{"system": S.MESSAGE_EVENT, "code": event["kind"],
                                      "display": event["kind_display"]}]}],
            "subject": {"reference": f"Patient/{event['person_id']}" if event["person_id"] else None,
                        "display": event["about"]},
            "about": [{"type": "Bundle", "identifier": {"system": S.MESSAGE_ID, "value": event["message_id"]}}],
            "sender": {"identifier": {"system": "urn:ietf:rfc:3986", "value": event["agency"]}},
            "received": event["received_at"],
            "payload": [{"contentString": event["summary"] or event["kind_display"]}],
        }
        if not event["person_id"]:
            communication["subject"] = {"display": "unlinked"}
        if event["recorded_at"]:
            communication["sent"] = event["recorded_at"]
        if event["occurred_at"]:
            communication["extension"] = [{"url": S.EXT_OCCURRED, "valueDateTime": event["occurred_at"]}]
        if event["categories"]:
            communication["reasonCode"] = [{"coding": [{"system": S.CONCERN_CATEGORY, "code": c}]}
                                           for c in event["categories"]]
        entries.append(_entry(base_url, communication))
    for n, escalation in enumerate(view["escalations"]):
        flag = dict(escalation["flag"], id=f"escalation-{n + 1}", subject={"reference": f"Patient/{who['id']}"})
        entries.append(_entry(base_url, flag))
    return {"resourceType": "Bundle", "type": "collection", "timestamp": _iso(now), "total": len(view["events"]),
            "entry": entries}


def _entry(base_url: str, resource: dict) -> dict:
    return {"fullUrl": f"{base_url}{resource['resourceType']}/{resource['id']}", "resource": resource}


def _same(value: dt.datetime | None) -> dt.datetime | None:
    return value


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def figures(connection: Connection, *, now: dt.datetime, agency: str | None = None) -> list[dict]:
    """Return the figures per agency: messages sent and received, deadlines met on time and late, overdue,
    late submissions (police notices that arrived late), possible duplicates and matches awaiting review.

    ``agency`` limits the answer to one agency's row.
    """
    from gateway.delivery.models import KIND_BUILT, KIND_MESSAGE, DeliveryRow

    delivery = DeliveryRow.__table__
    rows: dict[str, dict] = {}

    def row(uri: str) -> dict:
        return rows.setdefault(uri, {"agency": uri, "sent": 0, "received": 0, "decided_on_time": 0,
                                     "decided_late": 0, "overdue": 0, "late_submissions": 0,
                                     "possible_duplicates_awaiting_review": 0,
                                     "possible_matches_awaiting_review": 0})

    def where(column):
        return [column == agency] if agency is not None else []

    for uri, count in connection.execute(select(_ACCEPTED.c.sender_agency, func.count()).where(
            *where(_ACCEPTED.c.sender_agency)).group_by(_ACCEPTED.c.sender_agency)):
        row(uri)["sent"] = count
    for uri, count in connection.execute(select(delivery.c.destination, func.count()).where(
            delivery.c.kind.in_((KIND_MESSAGE, KIND_BUILT)), *where(delivery.c.destination)).group_by(delivery.c.destination)):
        row(uri)["received"] = count
    on_time = func.sum(case((_DEADLINE.c.met_at <= _DEADLINE.c.due_at, 1), else_=0))
    late = func.sum(case((_DEADLINE.c.met_at > _DEADLINE.c.due_at, 1), else_=0))
    overdue = func.sum(case((_DEADLINE.c.met_at.is_(None) & (_DEADLINE.c.due_at < now), 1), else_=0))
    for uri, a, b, c in connection.execute(select(_DEADLINE.c.agency, on_time, late, overdue).where(
            *where(_DEADLINE.c.agency)).group_by(_DEADLINE.c.agency)):
        row(uri).update(decided_on_time=int(a or 0), decided_late=int(b or 0), overdue=int(c or 0))
    for uri, count in connection.execute(select(_EVENT.c.sender_agency, func.count()).where(
            _EVENT.c.late_days.is_not(None), *where(_EVENT.c.sender_agency)).group_by(_EVENT.c.sender_agency)):
        row(uri)["late_submissions"] = count
    for uri, count in connection.execute(select(_DUP.c.home_la, func.count()).where(
            _DUP.c.status == OPEN, _DUP.c.home_la.is_not(None), *where(_DUP.c.home_la)).group_by(_DUP.c.home_la)):
        row(uri)["possible_duplicates_awaiting_review"] = count
    for uri, count in connection.execute(select(_MATCH.c.home_la, func.count()).where(
            _MATCH.c.status == OPEN, _MATCH.c.home_la.is_not(None), *where(_MATCH.c.home_la))
            .group_by(_MATCH.c.home_la)):
        row(uri)["possible_matches_awaiting_review"] = count
    if agency is not None:
        row(agency)
    return [rows[uri] for uri in sorted(rows)]


def open_duplicates(connection: Connection, *, home_la: str | None = None, limit: int = 100) -> list[dict]:
    """Return the possible duplicates waiting for a person (of ``home_la`` when given), oldest first, each with
    both messages side by side (sender, kind, times, summary, categories)."""
    query = select(_DUP).where(_DUP.c.status == OPEN).order_by(_DUP.c.created_at, _DUP.c.id).limit(limit)
    if home_la is not None:
        query = query.where(_DUP.c.home_la == home_la)
    return [duplicate_view(connection, row) for row in connection.execute(query).all()]


def duplicate_view(connection: Connection, row) -> dict:
    """One possible duplicate: the flag and both messages' events."""
    events = {e.message_id: e for e in connection.execute(select(_EVENT).where(
        _EVENT.c.message_id.in_([row.message_id, row.duplicate_of]))).all()}

    def side(message_id: str) -> dict:
        e = events.get(message_id)
        if e is None:
            return {"message_id": message_id}
        return {"message_id": message_id, "agency": e.sender_agency, "kind": e.kind,
                "occurred_at": _iso(e.occurred_at), "recorded_at": _iso(e.recorded_at),
                "received_at": _iso(e.received_at), "categories": json.loads(e.categories or "[]"),
                "summary": e.summary, "source_record": e.source_record}

    return {"id": row.id, "status": row.status, "similarity": row.similarity, "reason": row.reason,
            "home_la": row.home_la, "created_at": _iso(row.created_at), "message": side(row.message_id),
            "duplicate_of": side(row.duplicate_of), "decided_by": row.decided_by, "decided_at": _iso(row.decided_at),
            "decision_reason": row.decision_reason}


DUPLICATE_DECISIONS = {"confirm": "confirmed", "dismiss": "dismissed"}


def decide_duplicate(connection: Connection, flag_id: int, action: str, *, by: str, reason: str, now: dt.datetime,
                     home_la: str | None = None) -> dict:
    """A person decides a possible duplicate: ``confirm`` (the same event sent twice) or ``dismiss`` (two events).

    Both messages stay delivered and in the chronology either way; the
    decision is recorded with who, when and why. Returns the decided flag.
    Raises :class:`~gateway.linkage.index.ReviewError` (400 no reason or
    unknown action, 403 another LA's, 404 unknown, 409 already decided).
    """
    from gateway.linkage.index import ReviewError

    if action not in DUPLICATE_DECISIONS:
        raise ReviewError(400, f"unknown decision {action!r}: confirm or dismiss")
    if not isinstance(reason, str) or not reason.strip():
        raise ReviewError(400, "a decision on a possible duplicate needs a reason")
    row = connection.execute(select(_DUP).where(_DUP.c.id == flag_id)).first()
    if row is None:
        raise ReviewError(404, f"no possible duplicate {flag_id}")
    if home_la is not None and row.home_la != home_la:
        raise ReviewError(403, f"possible duplicate {flag_id} is about another local authority's child")
    if row.status != OPEN:
        raise ReviewError(409, f"possible duplicate {flag_id} was already {row.status} by {row.decided_by}")
    connection.execute(_DUP.update().where(_DUP.c.id == flag_id).values(
        status=DUPLICATE_DECISIONS[action], decided_by=by, decided_at=now, decision_reason=reason.strip()))
    record_audit(connection, action="U", subtype="decision", agent=by, at=now,
                 entities=[("duplicate-flag", flag_id), ("message", row.message_id), ("message", row.duplicate_of)],
                 detail={"decision": f"duplicate-{DUPLICATE_DECISIONS[action]}"})
    return duplicate_view(connection, connection.execute(select(_DUP).where(_DUP.c.id == flag_id)).first())
